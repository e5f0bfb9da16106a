// The console's entry: tokens, tabs (keyboard: arrows, Home, End), connecting, and polling the
// view on screen (server status every 2 s, the open run every 5 s).

import { api, session } from "./api.js";
import { clearError, showError } from "./dom.js";
import { loadRuns } from "./runs.js";
import { setupAB, setupSpeak } from "./speak.js";
import { refreshStatus } from "./status.js";
import { loadVoices, setupVoices } from "./voices.js";

const VIEWS = ["voices", "speak", "ab", "runs", "status"];
const POLL_MS = { status: 2000, runs: 5000 };
const REFRESH = { voices: loadVoices, runs: loadRuns, status: refreshStatus };
let connected = false;
let timer = null;

function currentView() {
  return VIEWS.find((v) => document.getElementById(`tab-${v}`).getAttribute("aria-selected") === "true");
}

function selectView(view, focus = false) {
  for (const v of VIEWS) {
    const tab = document.getElementById(`tab-${v}`);
    tab.setAttribute("aria-selected", String(v === view));
    tab.tabIndex = v === view ? 0 : -1;
    document.getElementById(`view-${v}`).hidden = v !== view;
  }
  if (focus) document.getElementById(`tab-${view}`).focus();
  if (location.hash !== `#${view}`) history.replaceState(null, "", `#${view}`);
  schedule(true);
}

async function refresh(view) {
  if (!connected || !REFRESH[view]) return;
  try {
    await REFRESH[view]();
  } catch (err) {
    showError(err);
  }
}

// Refresh the view on screen now (when asked) and then every POLL_MS of it.
function schedule(now) {
  clearTimeout(timer);
  const view = currentView();
  const next = async () => {
    await refresh(currentView());
    if (POLL_MS[currentView()]) timer = setTimeout(next, POLL_MS[currentView()]);
  };
  if (now) next();
  else if (POLL_MS[view]) timer = setTimeout(next, POLL_MS[view]);
}

function setupTabs() {
  const list = document.querySelector('[role="tablist"]');
  for (const v of VIEWS) document.getElementById(`tab-${v}`).addEventListener("click", () => selectView(v));
  list.addEventListener("keydown", (event) => {
    const i = VIEWS.indexOf(currentView());
    const moves = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: VIEWS.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    selectView(VIEWS[(moves[event.key] + VIEWS.length) % VIEWS.length], true);
  });
}

async function connect() {
  clearError();
  const line = document.getElementById("server-line");
  try {
    const info = await api("/v1/server");
    connected = true;
    line.textContent = `Connected: gsvd ${info.version} on ${info.device} (${info.backend}), ${info.resident.length} model(s) resident.`;
    await loadVoices();
    schedule(true);
  } catch (err) {
    connected = false;
    line.textContent = "Not connected: enter the token and press Connect.";
    showError(err.status === 401 ? new Error(`The token was refused: ${err.message}.`) : err);
  }
}

function setupAuth() {
  const form = document.getElementById("auth-form");
  document.getElementById("token").value = session.token;
  document.getElementById("admin-token").value = session.adminToken;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    session.save(document.getElementById("token").value.trim(), document.getElementById("admin-token").value.trim());
    connect();
  });
}

setupTabs();
setupAuth();
setupVoices();
setupSpeak();
setupAB();
selectView(VIEWS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "voices");
if (session.saved) connect(); // else wait for Connect (an empty token is fine for a daemon without one)
