// Small line charts on a canvas: a few series of the latest values, y from 0 to the largest one.

export function lineChart(canvas, series, digits = 0) {
  const scale = window.devicePixelRatio || 1;
  canvas.width = Math.round(canvas.clientWidth * scale) || canvas.width;
  canvas.height = Math.round(canvas.clientHeight * scale) || canvas.height;
  const g = canvas.getContext("2d");
  const { width, height } = canvas;
  const pad = 4 * scale, font = 11 * scale;
  g.clearRect(0, 0, width, height);
  const values = series.flatMap((s) => s.values).filter((v) => v !== null && Number.isFinite(v));
  const top = Math.max(1e-9, ...values, 0) * 1.1 || 1;
  const style = getComputedStyle(canvas);
  g.strokeStyle = style.borderColor;
  g.strokeRect(0.5, 0.5, width - 1, height - 1);
  g.fillStyle = style.color;
  g.font = `${font}px sans-serif`;
  g.fillText(values.length ? (top / 1.1).toFixed(digits) : "no data yet", pad, font + pad);
  for (const { values: ys, color, length } of series) {
    const n = Math.max(2, length || ys.length);
    g.strokeStyle = color;
    g.lineWidth = 1.5 * scale;
    g.beginPath();
    let pen = false;
    ys.forEach((y, i) => {
      if (y === null || !Number.isFinite(y)) { pen = false; return; }
      const px = pad + (i / (n - 1)) * (width - 2 * pad), py = height - pad - (y / top) * (height - 2 * pad - font);
      if (pen) g.lineTo(px, py); else g.moveTo(px, py);
      pen = true;
    });
    g.stroke();
  }
}
