"""Content credentials signed with a throwaway certificate chain, and the `gsvd synth` / `gsvd watermark
detect` commands end to end on a tiny random voice and on real speech."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from gsvd.cli import app
from gsvd.engine.provenance.label import AiLabel, read_label
from gsvd.wavio import write_wav

from .conftest import encode_file

runner = CliRunner()
c2pa = pytest.importorskip("c2pa")


def make_chain(tmp_path):
    """A root CA and an end-entity signing certificate (ES256), as c2pa requires them."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gsvd tests")])

    def usage(**on):
        keys = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
                "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
        return x509.KeyUsage(**{k: on.get(k, False) for k in keys})

    def base(subject, issuer, key):
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=7)))

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (base(name("test root"), name("test root"), ca_key)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    issuer_key = ca_key
    leaf = (base(name("gsvd signer"), ca.subject, key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
            .sign(issuer_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    cert = tmp_path / "chain.pem"
    cert.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    key_path = tmp_path / "key.pem"
    key_path.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert, key_path, ca.public_bytes(pem)


def test_sign_and_verify_content_credentials(tmp_path) -> None:
    from gsvd.engine.provenance.c2pa_sign import (
        TRAINED_ALGORITHMIC_MEDIA,
        SigningConfig,
        read_credentials,
        sign_file,
    )

    cert, key, root = make_chain(tmp_path)
    label = AiLabel(voice="alice")
    path = write_wav(tmp_path / "out.wav", 0.1 * np.sin(np.arange(16000) / 5.0), 16000, label=label)
    assert read_credentials(path) is None
    sign_file(path, label, SigningConfig(cert, key))
    creds = read_credentials(path, trust_anchors=root)
    assert creds is not None and creds.state == "Trusted" and creds.problems == ()
    assert creds.label == label
    actions = next(a for a in creds.manifest["assertions"] if a["label"].startswith("c2pa.actions"))
    assert actions["data"]["actions"][0]["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert read_credentials(path).state == "Valid"  # signature good, root not trusted by default
    assert read_label(path) == label  # the metadata label survives signing
    # a byte of audio changed after signing: the manifest no longer matches
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert read_credentials(path, trust_anchors=root).state == "Invalid"


def test_bad_signing_material_is_a_clear_error_and_leaves_the_file(tmp_path) -> None:
    from gsvd.engine.errors import InvalidInput
    from gsvd.engine.provenance.c2pa_sign import SigningConfig, sign_file

    cert, _, _ = make_chain(tmp_path / "a" if (tmp_path / "a").mkdir() is None else tmp_path)
    _, other_key, _ = make_chain(tmp_path / "b" if (tmp_path / "b").mkdir() is None else tmp_path)
    path = write_wav(tmp_path / "out.wav", np.zeros(1600), 16000)
    before = path.read_bytes()
    with pytest.raises(InvalidInput, match="signing failed"):  # the key is not the certificate's
        sign_file(path, AiLabel(voice="a"), SigningConfig(cert, other_key))
    with pytest.raises(InvalidInput, match="cannot read the signing private key"):
        sign_file(path, AiLabel(voice="a"), SigningConfig(cert, tmp_path / "missing.pem"))
    with pytest.raises(InvalidInput, match="algorithm"):
        sign_file(path, AiLabel(voice="a"), SigningConfig(cert, other_key, "md5"))
    assert path.read_bytes() == before


@pytest.fixture(scope="module")
def tiny_voice(tmp_path_factory):
    from gsvd.engine.testing.bundle import write_tiny_voice

    return write_tiny_voice(tmp_path_factory.mktemp("voices"), name="alice")


@pytest.mark.slow
def test_synth_writes_labelled_signed_watermarked_wav(tmp_path, tiny_voice) -> None:
    from gsvd.engine.provenance.c2pa_sign import read_credentials

    cert, key, root = make_chain(tmp_path)
    out = tmp_path / "s.wav"
    args = ["synth", "--voice", str(tiny_voice), "--text", "你好，今天天气很好。", "--out", str(out), "--device", "cpu",
            "--seed", "1", "--sign-cert", str(cert), "--sign-key", str(key)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    label = read_label(out)
    assert label is not None and label.voice == "alice" and label.watermark.startswith("gsvd-qim1 key=public daemon=0")
    creds = read_credentials(out, trust_anchors=root)
    assert creds.state == "Trusted" and creds.label == label
    res = runner.invoke(app, [*args[:-4], "--sign-cert", str(cert)])
    assert res.exit_code == 2 and "both --sign-cert and --sign-key" in res.output


def _speech(running, body: dict) -> tuple[bytes, dict]:
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{running.daemon.http_port}/v1/audio/speech",
                                 data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return resp.read(), dict(resp.headers)


@pytest.mark.slow
def test_daemon_signs_whole_wav_answers(tmp_path, tiny_voice) -> None:
    """`gsvd serve --sign-cert/--sign-key`: a whole WAV answer of /v1/audio/speech carries content credentials
    whose label is the one in its headers; a streamed answer carries the label but no manifest."""
    from gsvd.daemon.background import serve_in_thread
    from gsvd.daemon.config import DaemonConfig
    from gsvd.engine import Engine
    from gsvd.engine.errors import InvalidInput
    from gsvd.engine.provenance.c2pa_sign import read_credentials

    cert, key, root = make_chain(tmp_path)
    settings = dict(env={}, port=0, http_port=0, voices_dir=str(tiny_voice.parent), device="cpu", grace_s=1.0,
                    no_auth=True)
    with pytest.raises(InvalidInput, match="cannot read the signing private key"):
        DaemonConfig.load(None, **settings, sign_cert=str(cert), sign_key=str(tmp_path / "missing.pem"))
    with pytest.raises(InvalidInput, match="both sign_cert and sign_key"):
        DaemonConfig.load(None, **settings, sign_cert=str(cert))
    cfg = DaemonConfig.load(None, **settings, sign_cert=str(cert), sign_key=str(key))
    running = serve_in_thread(Engine(device="cpu", max_streams=2), cfg)
    try:
        body = {"input": "你好。", "voice": "alice"}
        whole, headers = _speech(running, body)
        streamed, stream_headers = _speech(running, {**body, "stream": True})
    finally:
        running.stop()
    label = AiLabel.from_dict(json.loads(headers["X-AI-Label"]))
    (tmp_path / "whole.wav").write_bytes(whole)
    creds = read_credentials(tmp_path / "whole.wav", trust_anchors=root)
    assert creds is not None and creds.state == "Trusted" and creds.label == label
    assert read_label(tmp_path / "whole.wav") == label
    (tmp_path / "streamed.wav").write_bytes(streamed)
    assert read_credentials(tmp_path / "streamed.wav") is None
    assert read_label(tmp_path / "streamed.wav").voice == "alice" and stream_headers["X-AI-Generated"] == "true"


def test_engine_marks_chunks_as_a_whole_call_would(tiny_voice) -> None:
    from gsvd.engine import Engine, SynthesisOptions
    from gsvd.engine.provenance import WatermarkConfig, Watermarker

    config = WatermarkConfig(daemon_id=5)
    opts = SynthesisOptions(seed=7)
    text = "你好。今天天气很好，我们去公园。"
    with Engine(device="cpu", max_streams=2) as plain:
        plain.load_voice(tiny_voice)
        unmarked, rate = plain.synthesize(text, "alice", opts)
    with Engine(device="cpu", max_streams=2, watermark=config) as marked:
        marked.load_voice(tiny_voice)
        chunks = list(marked.stream(text, "alice", opts))
        fast = list(marked.stream(text, "alice", SynthesisOptions(seed=7, speed=1.3)))
    assert len([c for c in chunks if len(c.pcm)]) > 1  # really chunked
    # the marker's contract: chunks end on its 10 ms frame grid (320 samples), so no frame is split (and left
    # unmarked), at any speed
    for stream in (chunks, fast):
        assert all(c.offset % 320 == 0 and len(c.pcm) % 320 == 0 for c in stream), [(c.offset, len(c.pcm)) for c in stream]
    got = np.concatenate([c.pcm for c in chunks]).astype(np.float64) - unmarked
    want = Watermarker(config).mark(unmarked, rate, "alice").astype(np.float64) - unmarked
    # the runtime marks on the audio's device in float32, the reference marker in float64: same mark, to rounding
    assert np.sqrt(np.mean(want**2)) > 1e-4 * np.sqrt(np.mean(unmarked.astype(np.float64) ** 2))  # a real mark
    assert np.abs(got - want).max() <= 1e-3 * np.abs(want).max()


def test_detect_cli_exit_codes_and_formats(tmp_path, shared_speech) -> None:
    from gsvd.engine.audio import load_audio
    from gsvd.engine.provenance import Watermarker

    x = load_audio(shared_speech / "en" / "moonshine_two_cities_librivox.wav", 32000)[: 10 * 32000]
    y = Watermarker().mark(x, 32000, "alice")
    marked = write_wav(tmp_path / "m.wav", y, 32000)
    unmarked = write_wav(tmp_path / "u.wav", x, 32000)
    encode_file(y, 32000, tmp_path / "m.mp3", "libmp3lame")
    res = runner.invoke(app, ["watermark", "detect", str(marked), str(tmp_path / "m.mp3"), "--voice", "alice", "--json"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert all(r["found"] and r["voice"] == "alice" and r["daemon_id"] == 0 for r in rows), rows
    import soxr

    fast = write_wav(tmp_path / "fast.wav", soxr.resample(y, 32000, 29091), 32000)  # played 10% faster
    res = runner.invoke(app, ["watermark", "detect", str(fast), "--json"])
    assert res.exit_code == 0, res.output
    row = json.loads(res.output)
    assert row["found"] and row["daemon_id"] == 0 and row["speed"] == pytest.approx(1.1, abs=1e-3)
    res = runner.invoke(app, ["watermark", "detect", str(fast)])
    assert res.exit_code == 0 and "read at 1.1x speed" in res.output
    res = runner.invoke(app, ["watermark", "detect", str(unmarked)])
    assert res.exit_code == 1 and "no watermark found" in res.output
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVEjunk")
    res = runner.invoke(app, ["watermark", "detect", str(tmp_path / "bad.wav"), str(tmp_path / "none.wav")])
    assert res.exit_code == 2 and "not found" in res.output and "Traceback" not in res.output
