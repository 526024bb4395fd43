// The live avatar page: one WebSocket (protocol: avatarlm/serve/protocol.py), a canvas for the frames,
// WebAudio for the avatar's voice (each frame's sound arrives with it, so playing it on arrival keeps sync).
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const state = { frames: 0, voiceChunks: 0, stats: null, ready: null, shown: [] };
window.avatarlm = state; // for scripts and tests

const canvas = $("avatar");
const ctx2d = canvas.getContext("2d");
let audio = null; // AudioContext, made on the first click (browsers need a gesture)
let playAt = 0;
let mic = null;

function log(text, kind = "info") {
  const li = document.createElement("li");
  li.className = kind;
  li.textContent = text;
  $("log").prepend(li);
}

function socketUrl() {
  const q = new URLSearchParams();
  if (params.get("token")) q.set("token", params.get("token"));
  if (params.get("identity")) q.set("identity", params.get("identity"));
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/ws${q.toString() ? "?" + q : ""}`;
}

const ws = new WebSocket(socketUrl());
ws.binaryType = "arraybuffer";
ws.onopen = () => { $("status").textContent = "connected"; };
ws.onclose = (e) => {
  $("status").textContent = `disconnected${e.reason ? ": " + e.reason : ""} (code ${e.code})`;
  $("status").className = "status down";
  stopMic();
};
ws.onmessage = (e) => (typeof e.data === "string" ? onJson(JSON.parse(e.data)) : onBinary(e.data));

function send(message) {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

function onJson(m) {
  if (m.type === "ready" && m.actions) {
    state.ready = m;
    canvas.width = m.width; canvas.height = m.height;
    $("status").textContent = "live"; $("status").className = "status live";
    setupWorld(m);
  } else if (m.type === "ready") {
    state.ready = m;
    canvas.width = m.width; canvas.height = m.height;
    $("status").textContent = "live"; $("status").className = "status live";
    $("lang").replaceChildren(...m.languages.map((code) => new Option(code, code, code === "en", code === "en")));
    $("instructions").replaceChildren(...m.instructions.map((text) => {
      const b = document.createElement("button");
      b.type = "button"; b.className = "secondary"; b.textContent = text;
      b.onclick = () => send({ type: "instruction", text, seconds: 3 });
      return b;
    }));
    $("mic-role").textContent = m.microphone === "partner"
      ? "This model hears you as its partner: it listens while you talk."
      : "This model has one audio stream: it lip-syncs your microphone.";
  } else if (m.type === "stats") {
    state.stats = m;
    $("latency").textContent = m.latency_ms_p50 ?? "–";
    $("compute").textContent = m.compute_ms_p95 ?? "–";
  } else if (m.type === "error" || m.type === "warning") {
    log(m.message, m.type);
  } else if (m.type === "turn") {
    log(`you: ${m.heard || "(not understood)"}`);
    log(`avatar: ${m.answer}`);
    if (m.notice) log(m.notice, "warning");
  } else if (m.type === "barge_in") {
    log("(you interrupted: the avatar listens)");
  }
}

async function onBinary(buffer) {
  const view = new DataView(buffer);
  const kind = view.getUint8(0);
  const payload = buffer.slice(13);
  if (kind === 1) {
    const bitmap = await createImageBitmap(new Blob([payload], { type: "image/jpeg" }));
    ctx2d.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    state.frames += 1;
    $("frames").textContent = state.frames;
    const now = performance.now();
    state.shown.push(now);
    while (state.shown.length && state.shown[0] < now - 1000) state.shown.shift();
    $("fps").textContent = state.shown.length;
  } else if (kind === 2) {
    state.voiceChunks += 1;
    playVoice(new Int16Array(payload));
  }
}

function playVoice(pcm) {
  if (!audio || pcm.length === 0 || !pcm.some((v) => v !== 0)) return;
  const buf = audio.createBuffer(1, pcm.length, 16000);
  const data = buf.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) data[i] = pcm[i] / 32768;
  const src = audio.createBufferSource();
  src.buffer = buf;
  src.connect(audio.destination);
  playAt = Math.max(playAt, audio.currentTime + 0.03); // a 30 ms jitter buffer
  src.start(playAt);
  playAt += buf.duration;
}

function ensureAudio() {
  if (!audio) audio = new AudioContext();
  if (audio.state === "suspended") audio.resume();
}

$("say-form").onsubmit = (e) => {
  e.preventDefault();
  ensureAudio();
  const text = $("text").value.trim();
  if (!text) return;
  send({ type: "say", text, lang: $("lang").value || "en" });
  $("text").value = "";
};
$("stop").onclick = () => send({ type: "stop" });
$("new-face").onclick = () => send({ type: "reset", identity: Number($("identity").value) || 0 });
$("random-face").onclick = () => {
  $("identity").value = Math.floor(Math.random() * 100000);
  $("new-face").onclick();
};
$("image").onchange = () => {
  const file = $("image").files[0];
  if (!file) return;
  if (file.size > 4 * 1024 * 1024) { log("the image is over 4 MiB", "error"); return; }
  const reader = new FileReader();
  reader.onload = () => send({ type: "reset", image: reader.result });
  reader.readAsDataURL(file);
};

async function startMic() {
  ensureAudio();
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true },
    });
    const source = audio.createMediaStreamSource(stream);
    const tap = audio.createScriptProcessor(4096, 1, 1);
    send({ type: "audio_format", sample_rate: audio.sampleRate });
    tap.onaudioprocess = (e) => {
      const x = e.inputBuffer.getChannelData(0);
      const pcm = new Int16Array(x.length);
      for (let i = 0; i < x.length; i++) pcm[i] = Math.max(-1, Math.min(1, x[i])) * 32767;
      if (ws.readyState === WebSocket.OPEN) ws.send(pcm.buffer);
    };
    const mute = audio.createGain();
    mute.gain.value = 0;
    source.connect(tap); tap.connect(mute); mute.connect(audio.destination);
    mic = { stream, source, tap };
    $("mic").setAttribute("aria-pressed", "true");
    $("mic").textContent = "Microphone: on";
  } catch (err) {
    log(`microphone: ${err.message}`, "error");
  }
}

function stopMic() {
  if (!mic) return;
  mic.tap.disconnect(); mic.source.disconnect();
  mic.stream.getTracks().forEach((t) => t.stop());
  mic = null;
  $("mic").setAttribute("aria-pressed", "false");
  $("mic").textContent = "Microphone: off";
}

$("mic").onclick = () => (mic ? stopMic() : startMic());

// Conversation mode: the microphone's turns are transcribed and answered aloud; speak over it to interrupt.
$("converse").onclick = async () => {
  const on = $("converse").getAttribute("aria-pressed") !== "true";
  if (on && !mic) await startMic();
  send({ type: "conversation", on, lang: $("lang").value || "en" });
  $("converse").setAttribute("aria-pressed", String(on));
  $("converse").textContent = `Conversation: ${on ? "on" : "off"}`;
  if (on) log("conversation on: talk, then pause; speak over the avatar to interrupt it");
};

// World models (`avatarlm play --model M --env GAME`): keys hold actions; releasing them goes back to noop.
// Each key names the actions it can mean, in order; the first the game has is bound.
const KEY_ACTIONS = {
  ArrowUp: ["forward", "move_up"], w: ["forward", "move_up"],
  ArrowDown: ["backward", "move_down"], s: ["backward", "move_down"],
  ArrowLeft: ["turn_left", "move_left"], ArrowRight: ["turn_right", "move_right"],
  a: ["strafe_left", "move_left"], d: ["strafe_right", "move_right"],
  q: ["forward_left"], e: ["forward_right"],
  " ": ["attack", "do"], f: ["use", "place_table"], z: ["sleep"], x: ["place_stone"],
};
const KEY_LABELS = { " ": "Space", ArrowUp: "↑", ArrowDown: "↓", ArrowLeft: "←", ArrowRight: "→" };
state.bindings = {}; // key -> action id
state.sentActions = []; // ids sent, in order (for tests)
let heldKey = null;

function sendAction(id) {
  state.sentActions.push(id);
  send({ type: "action", id });
  $("held").textContent = state.ready.actions[id];
  for (const li of $("keys").children) li.classList.toggle("held", Number(li.dataset.action) === id);
}

function setupWorld(m) {
  document.body.classList.add("world-model");
  $("world").hidden = false;
  $("mic-role").textContent = "";
  const noop = m.actions.indexOf("noop");
  state.bindings = {};
  const items = [];
  for (const [key, names] of Object.entries(KEY_ACTIONS)) {
    const name = names.find((n) => m.actions.includes(n));
    if (name === undefined) continue;
    state.bindings[key] = m.actions.indexOf(name);
    const li = document.createElement("li");
    li.dataset.action = state.bindings[key];
    const kbd = document.createElement("kbd");
    kbd.textContent = KEY_LABELS[key] || key.toUpperCase();
    li.append(kbd, ` ${name}`);
    items.push(li);
  }
  $("keys").replaceChildren(...items);
  document.onkeydown = (e) => {
    if (e.target.tagName === "INPUT" || !(e.key in state.bindings)) return;
    e.preventDefault();
    if (heldKey === e.key) return; // the browser's key repeat
    heldKey = e.key;
    sendAction(state.bindings[e.key]);
  };
  document.onkeyup = (e) => {
    if (e.key !== heldKey) return;
    heldKey = null;
    sendAction(noop);
  };
  $("new-game").onclick = () => send({ type: "reset", identity: Number($("game-seed").value) || 0 });
  log(`${m.env}: a world model plays it; hold the keys below`);
}
