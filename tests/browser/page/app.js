// The self-driving passkey test page (served by tests/browser/rp_server.py).
//
// On load it runs every scenario in order against the real authenticator the
// browser finds (ferrokey on /dev/hidrawN), has the relying party verify each
// ceremony server-side (py_webauthn), and POSTs one verdict per scenario to
// /api/result, then /api/done.  No WebDriver is needed: the same page runs
// unchanged in Chromium and Firefox.  Keep the scenario names in sync with
// SCENARIOS in guest_browsers.py.
"use strict";

const params = new URLSearchParams(location.search);
const BROWSER = params.get("browser") || "manual";
const ONLY = (params.get("only") || "").split(",").filter(Boolean);

const logEl = document.getElementById("log");
function show(line, cls) {
  const span = document.createElement("span");
  if (cls) span.className = cls;
  span.textContent = line + "\n";
  logEl.appendChild(span);
}

// ------------------------------------------------------------ base64url <-> bytes
function b64u(buf) {
  const bytes = new Uint8Array(buf);
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
function unb64u(text) {
  const s = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out.buffer;
}

// WebAuthn JSON (from the RP) -> the dictionaries navigator.credentials takes.
function creationOptions(j) {
  return Object.assign({}, j, {
    challenge: unb64u(j.challenge),
    user: Object.assign({}, j.user, { id: unb64u(j.user.id) }),
    excludeCredentials: (j.excludeCredentials || []).map((c) => Object.assign({}, c, { id: unb64u(c.id) })),
  });
}
function requestOptions(j) {
  return Object.assign({}, j, {
    challenge: unb64u(j.challenge),
    allowCredentials: (j.allowCredentials || []).map((c) => Object.assign({}, c, { id: unb64u(c.id) })),
  });
}
// PublicKeyCredential -> WebAuthn JSON (what py_webauthn parses); by hand, so it
// does not depend on toJSON() being there.
function credentialJSON(c) {
  const r = c.response;
  const out = {
    id: c.id, rawId: b64u(c.rawId), type: c.type,
    authenticatorAttachment: c.authenticatorAttachment || null,
    clientExtensionResults: c.getClientExtensionResults ? c.getClientExtensionResults() : {},
  };
  if (r.attestationObject) {
    out.response = {
      clientDataJSON: b64u(r.clientDataJSON), attestationObject: b64u(r.attestationObject),
      transports: r.getTransports ? r.getTransports() : [],
    };
  } else {
    out.response = {
      clientDataJSON: b64u(r.clientDataJSON), authenticatorData: b64u(r.authenticatorData),
      signature: b64u(r.signature), userHandle: r.userHandle ? b64u(r.userHandle) : null,
    };
  }
  return out;
}

// ------------------------------------------------------------ the relying party
async function api(path, body) {
  const res = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(Object.assign({ browser: BROWSER }, body)),
  });
  return res.json();
}
function log(msg) { show(msg); return api("/api/log", { msg }).catch(() => {}); }

class Fail extends Error {}
function check(cond, msg) { if (!cond) throw new Fail(msg); }

// What the browser logged about its own WebAuthn UI (Chromium's FIDO log, fed to
// the RP by guest_browsers.py): [{kind: "ui-step"|"ctap-error", value}].
async function browserUi() {
  try {
    return (await (await fetch(`/api/ui?browser=${encodeURIComponent(BROWSER)}`)).json()).entries;
  } catch (e) {
    return [];
  }
}
// Steps that need nobody: the request runs on (kClientPinTapAgain: "touch your
// key again", answered by the key's own presence check).
const PASSIVE_STEPS = ["kNotStarted", "kUsbInsertAndActivate", "kClientPinTapAgain", "kClosed"];
// Sheets that wait for a user's click, which the test harness gives
// (guest_browsers.py SHEET_ANSWERS, through Chromium's UI DevTools), logging a
// "ui-action" entry, or "ui-action-failed" if it could not.  Any other sheet
// (a PIN dialog, ...) aborts the ceremony: nobody can answer it headless.
const HARNESS_ANSWERS = ["kKeyAlreadyRegistered", "kSelectAccount", "kSelectSingleAccount"];

// One timed WebAuthn call; ms go into the scenario's timings under `label`.
// fn gets an AbortSignal.  The ceremony is aborted when the browser shows a
// sheet only a user could answer (a PIN dialog, ...) and the harness does not
// answer, or when it is still pending `deadlineMs` after it began, so that the
// scenario fails with a clear message instead of hanging the run.  An error
// thrown from here carries .uiSteps, .ctapErrors and .uiActions logged during
// the ceremony.
async function timed(timings, label, deadlineMs, fn) {
  const ctl = new AbortController();
  let why = null;
  const seenBefore = (await browserUi()).length;
  const during = [];
  const refresh = async () => during.splice(0, during.length, ...(await browserUi()).slice(seenBefore));
  const timer = setTimeout(() => { why = why || `still pending after ${deadlineMs / 1000} s`; ctl.abort(); },
    deadlineMs);
  let polling = true;
  const poll = (async () => {
    while (polling) {
      await new Promise((r) => setTimeout(r, 400));
      await refresh();
      const blocking = during.find((e) => e.kind === "ui-step" && !PASSIVE_STEPS.includes(e.value) &&
        !HARNESS_ANSWERS.includes(e.value));
      const failed = during.find((e) => e.kind === "ui-action-failed");
      if ((blocking || failed) && polling && !why) {
        why = blocking ? `the browser shows its ${blocking.value} sheet, which only a user can answer`
          : `the harness could not answer the browser's sheet: ${failed.value}`;
        ctl.abort();
      }
    }
  })();
  const t0 = performance.now();
  try {
    return await fn(ctl.signal);
  } catch (e) {
    await refresh();
    const err = why ? new Fail(`${label.replace(/_ms$/, "")}() aborted: ${why} (${e.name})`) : e;
    if (why) err.cause = e;
    if (err && typeof err === "object") {
      const ui = summarizeUi(during);
      err.uiSteps = ui.steps;
      err.ctapErrors = ui.ctapErrors;
      err.uiActions = ui.actions;
    }
    throw err;
  } finally {
    polling = false;
    clearTimeout(timer);
    const ms = Math.round(performance.now() - t0);
    timings[label] = timings[label] ? [].concat(timings[label], ms) : ms;
    await poll;
    lastCeremony.since = seenBefore;
  }
}
// Where the browser's UI log stood when the last timed() call began.
const lastCeremony = { since: 0 };
// The UI steps and harness actions logged since the last timed() call began.
async function uiSinceLastCeremony() {
  return summarizeUi((await browserUi()).slice(lastCeremony.since));
}

// Browser UI log entries, sorted: UI steps, CTAP errors, harness actions.
function summarizeUi(entries) {
  return {
    steps: entries.filter((x) => x.kind === "ui-step").map((x) => x.value),
    ctapErrors: entries.filter((x) => x.kind === "ctap-error").map((x) => x.value),
    actions: entries.filter((x) => x.kind.startsWith("ui-action")).map((x) => `${x.kind}: ${x.value}`),
  };
}

const DEADLINE_SLACK_MS = 5000;  // past the RP's own ceremony timeout

// register(): options from the RP, navigator.credentials.create(), RP verification.
async function register(timings, opts, label = "create_ms") {
  const o = await api("/api/register/options", opts);
  check(o.publicKey, "no registration options: " + JSON.stringify(o));
  const cred = await timed(timings, label, o.publicKey.timeout + DEADLINE_SLACK_MS,
    (signal) => navigator.credentials.create({ publicKey: creationOptions(o.publicKey), signal }));
  const v = await api("/api/register/verify", { token: o.token, credential: credentialJSON(cred) });
  check(v.ok, "RP rejected the registration: " + v.error);
  return v;
}

// The RP's verdict on one sign-in (a refusal is an answer here, not an error):
// options (allowCredentials = allow; [] = discoverable), get(), verification.
async function signInVerdict(timings, allow, label = "get_ms") {
  const o = await api("/api/login/options", { allow });
  check(o.publicKey, "no authentication options: " + JSON.stringify(o));
  const cred = await timed(timings, label, o.publicKey.timeout + DEADLINE_SLACK_MS,
    (signal) => navigator.credentials.get({ publicKey: requestOptions(o.publicKey), signal }));
  return api("/api/login/verify", { token: o.token, credential: credentialJSON(cred) });
}

// signIn(): signInVerdict() that the RP must accept.
async function signIn(timings, allow, label = "get_ms") {
  const v = await signInVerdict(timings, allow, label);
  check(v.ok, "RP rejected the assertion: " + v.error);
  return v;
}

function deviceBound(v, what) {
  check(v.deviceType === "single_device" && v.backedUp === false,
    `${what}: BE/BS flags say ${v.deviceType}, backed up ${v.backedUp} (want single_device, false)`);
}

// ------------------------------------------------------------ scenarios
const state = {};

async function nonResident(t) {
  const reg = await register(t, { user: "alice", residentKey: "discouraged", attestation: "none" });
  deviceBound(reg, "registration");
  state.nr = reg.id;
  const a = await signIn(t, [reg.id]);
  check(a.id === reg.id, "signed in with another credential");
  return `fmt=${reg.fmt} rk=${JSON.stringify(reg.credProps)} counter ${a.prevSignCount} -> ${a.signCount}`;
}

async function discoverable(t) {
  let reg;
  try {
    reg = await register(t, { user: "dora", residentKey: "required", attestation: "none" });
  } catch (e) {
    // Chromium upgrades userVerification to "required" for a discoverable
    // credential on a security key; a key with a PIN option but no PIN set and no
    // built-in UV then gets the "create a PIN" sheet, which only a user can fill in.
    if (e.uiSteps && e.uiSteps.includes("kClientPinSetup")) {
      throw new Fail(e.message + " (Chromium requires user verification for a discoverable " +
        "credential on a security key; the key has no PIN set and no built-in UV)");
    }
    throw e;
  }
  deviceBound(reg, "registration");
  check(!reg.credProps || reg.credProps.rk !== false, "credProps says the credential is not resident");
  const a = await signIn(t, []);
  check(a.id === reg.id, "empty allowCredentials returned another credential");
  check(a.userHandleMatches === true, `userHandle missing or wrong (${a.userHandleMatches})`);
  let how = "";
  const ui = await uiSinceLastCeremony();
  const chooser = ui.steps.find((s) => HARNESS_ANSWERS.includes(s));
  if (chooser) {
    // Chromium: its account chooser, answered by the harness like a user.
    const picked = ui.actions.find((x) => x.startsWith(`ui-action: ${chooser}`));
    how = ` (Chromium showed ${chooser}; the harness ${picked ? picked.replace(/^ui-action: \w+: /, "") :
      "left no ui-action entry"})`;
  }
  return `credProps=${JSON.stringify(reg.credProps)}; discoverable sign-in, userHandle matches${how}`;
}

async function ensureNonResident(t) {
  if (!state.nr) {
    const reg = await register(t, { user: "alice2", residentKey: "discouraged" }, "setup_create_ms");
    state.nr = reg.id;
  }
  return state.nr;
}

async function excluded(t) {
  const id = await ensureNonResident(t);
  let e = null;
  try {
    const v = await register(t, { user: "alice", exclude: [id], attestation: "none" });
    throw new Fail("second registration succeeded despite excludeCredentials (" + v.id + ")");
  } catch (err) {
    e = err;
  }
  if (e instanceof Fail) throw e;
  check(e.name === "InvalidStateError", `wanted InvalidStateError, got ${e.name}: ${e.message}`);
  const steps = e.uiSteps || [];
  if (!steps.includes("kKeyAlreadyRegistered")) {
    // Firefox: rejects at once, no sheet, no FIDO log.
    check(!steps.length, `InvalidStateError, but the browser logged UI steps ${steps.join(", ")}`);
    return `${e.name} after ${t.create_ms} ms`;
  }
  // Chromium shows "you already registered this security key" and rejects only
  // when the user closes that sheet, which the harness did: the rejection must
  // come from the key's answer, and the sheet must have been closed by a click.
  check((e.ctapErrors || []).some((c) => /kCtap2ErrCredentialExcluded/.test(c)),
    `InvalidStateError, but Chromium's FIDO log shows no CTAP2_ERR_CREDENTIAL_EXCLUDED (${e.ctapErrors})`);
  const closed = (e.uiActions || []).find((a) => a.startsWith("ui-action: kKeyAlreadyRegistered"));
  check(closed, `InvalidStateError, but the harness did not close the sheet (${e.uiActions})`);
  return `${e.name} after ${t.create_ms} ms: the key answered CTAP2_ERR_CREDENTIAL_EXCLUDED, Chromium ` +
    `showed its kKeyAlreadyRegistered sheet, and the harness ${closed.replace(/^ui-action: kKeyAlreadyRegistered: /, "")}`;
}

async function attestationDirect(t) {
  const reg = await register(t, { user: "attie", residentKey: "discouraged", attestation: "direct" });
  check(reg.fmt === "packed", `attestation format ${reg.fmt}, wanted packed (did the browser strip it?)`);
  check(reg.chainVerified === true, "x5c chain to ferrokey's root not verified");
  check(reg.bogusRootRejected === true, "negative control: the chain also verified against a bogus root");
  check(reg.aaguid && !/^0{8}-0{4}-0{4}-0{4}-0{12}$/.test(reg.aaguid), `AAGUID ${reg.aaguid}`);
  deviceBound(reg, "registration");
  return `packed, x5c chains to the ferrokey root (bogus root rejected), aaguid ${reg.aaguid}`;
}

async function counterAndFlags(t) {
  const id = await ensureNonResident(t);
  const seen = [];
  for (let i = 0; i < 2; i++) {
    const a = await signIn(t, [id]);
    deviceBound(a, "assertion");
    check(a.signCount > a.prevSignCount, `counter did not increase: ${a.prevSignCount} -> ${a.signCount}`);
    seen.push(a);
  }
  const h = seen[seen.length - 1].counterHistory;
  for (let i = 1; i < h.length; i++) check(h[i] > h[i - 1], `counter history not increasing: ${h}`);
  return `counter history ${h.join(" -> ")}; BE=0 BS=0 (single_device)`;
}

// ------------------------------------------------------------ the key as an instrument
// The RP drives ferrokey's control API (WebDriver's Add Credential, CDP's
// response overrides, the event stream): /api/instrument/* in rp_server.py.

// A resident P-256 credential seeded on the key with a private key the RP made
// (the only credential on the key), signed in with through the browser's normal
// path (empty allowCredentials); the RP verifies the signature with the public
// key it holds; the key's credentialAsserted event arrives; Get Credentials
// shows the counter moved.
async function ensureSeeded(t) {
  if (!state.seeded) {
    const seed = await api("/api/instrument/seed", { signCount: 7 });
    check(seed.ok, "seeding through the control API failed: " + seed.error);
    state.seeded = seed;
  }
  return state.seeded;
}

async function seededSignIn(t) {
  const seed = await ensureSeeded(t);
  const a = await signIn(t, []);
  check(a.id === seed.id, `signed in with ${a.id}, not the seeded credential ${seed.id}`);
  check(a.userHandleMatches === true, `userHandle missing or wrong (${a.userHandleMatches})`);
  check(a.signCount > seed.signCount, `counter ${a.signCount} did not move past the seeded ${seed.signCount}`);
  check(a.up === true, "UP flag not set");
  const c = await api("/api/instrument/check", { id: a.id, signCount: a.signCount });
  check(c.ok, c.error);
  return `seeded at ${seed.signCount}; discoverable sign-in verified with the RP's own public key, counter ` +
    `${a.signCount}; credentialAsserted arrived (${c.eventWaitS} s after the RP's verdict), Get Credentials ` +
    `says ${c.listedSignCount}`;
}

// One sign-in with the seeded credential while the key applies CDP's response
// overrides `bits`; the overrides are reset afterwards. Returns the RP's answer
// (a refusal is an answer here, not an error).
async function signInWithOverrides(t, bits) {
  const seed = await ensureSeeded(t);
  const set = await api("/api/instrument/override", bits);
  check(set.ok, "setting the response overrides failed: " + set.error);
  try {
    return await signInVerdict(t, [seed.id]);
  } finally {
    await api("/api/instrument/override", {});
  }
}

async function bogusSignature(t) {
  const v = await signInWithOverrides(t, { isBogusSignature: true });
  check(!v.ok, "the RP accepted an assertion with isBogusSignature set");
  check(/signature/i.test(v.error), `the RP refused, but not for the signature: ${v.error}`);
  check(v.up === true, "UP flag not set (only the signature should be wrong)");
  // The next, honest sign-in verifies again.
  const a = await signIn(t, [state.seeded.id]);
  return `RP refused: ${v.error}; the next sign-in verified (counter ${a.signCount})`;
}

async function badUp(t) {
  const v = await signInWithOverrides(t, { isBadUP: true });
  check(v.up === false, `the RP saw UP=${v.up} with isBadUP set (${JSON.stringify(v)})`);
  check(!v.ok, "the RP accepted an assertion without user presence");
  return `the RP saw UP=0 and refused: ${v.error}`;
}

// ------------------------------------------------------------ profiles and lifecycle
// Keys of other profiles, clones and migrations: the RP adds keys through the
// control API (Add Virtual Authenticator with `ferrokey:profile`, clone, CXF
// export and import) and the harness plugs the one the browser is to use (the
// others unplugged): /api/keys/* in rp_server.py.

// A key with built-in UV, as the browser's own key is (Chromium asks for UV
// when it makes a discoverable credential).
const WITH_UV = { hasUserVerification: true, isUserVerified: true };

// Runs fn(); afterwards the browser's own key is plugged again and the keys
// added for the scenario are removed.
async function withKeys(fn) {
  try {
    return await fn();
  } finally {
    const r = await api("/api/keys/release", {});
    if (!r.ok) await log(`releasing the scenario's keys failed: ${r.error}`);
  }
}

// A new key of `profile` named `name`, plugged for the browser (unless plug: false).
async function addKey(t, name, profile, options = {}, plug = true) {
  const k = await api("/api/keys/add", { name, profile, options, plug });
  check(k.ok, `adding a ${profile} key through the control API failed: ${k.error}`);
  check(k.profile === profile, `the key added as ${profile} says it is ${k.profile}`);
  if (plug) t.plug_ms = [].concat(t.plug_ms || [], Math.round(k.plugSeconds * 1000));
  return k;
}

async function useKey(t, name) {
  const r = await api("/api/keys/use", { name });
  check(r.ok, `plugging key ${name} failed: ${r.error}`);
  t.plug_ms = [].concat(t.plug_ms || [], Math.round(r.plugSeconds * 1000));
}

async function keyCredential(name, id) {
  const r = await api("/api/keys/credentials", { name });
  check(r.ok, `Get Credentials of key ${name} failed: ${r.error}`);
  const c = r.credentials.find((x) => x.credentialId === id);
  check(c, `key ${name} does not hold credential ${id}`);
  return c;
}

function backedUp(v, what) {
  check(v.deviceType === "multi_device" && v.backedUp === true,
    `${what}: BE/BS flags say ${v.deviceType}, backed up ${v.backedUp} (want multi_device, true)`);
}

// a. A passkey provider's key (profile synced-passkey): the RP sees the
// registration and the sign-in as backed up (BE=1 BS=1), attestation none,
// signCount 0.
async function syncedPasskey(t) {
  return withKeys(async () => {
    const k = await addKey(t, "synced", "synced-passkey");
    const reg = await register(t, { user: "sam", residentKey: "required", attestation: "direct" });
    backedUp(reg, "registration");
    check(reg.fmt === "none", `attestation format ${reg.fmt}, wanted none (the profile attests nothing)`);
    check(reg.signCount === 0, `registration signCount ${reg.signCount}, wanted 0`);
    check(!reg.credProps || reg.credProps.rk !== false, "credProps says the credential is not resident");
    const a = await signIn(t, [reg.id]);
    check(a.id === reg.id, "signed in with another credential");
    backedUp(a, "assertion");
    check(a.be === true && a.bs === true, `assertion flags BE=${a.be} BS=${a.bs}`);
    check(a.signCount === 0 && a.prevSignCount === 0, `counter ${a.prevSignCount} -> ${a.signCount}, wanted 0 -> 0`);
    return `key ${k.authenticatorId} (${k.profile}, aaguid ${k.aaguid}): registration fmt ${reg.fmt}, ` +
      `${reg.deviceType}, backed up ${reg.backedUp}, credProps ${JSON.stringify(reg.credProps)}; ` +
      `sign-in verified, BE=1 BS=1, uv ${a.uv}, counter ${a.prevSignCount} -> ${a.signCount}`;
  });
}

// b. A U2F-only key (profile u2f: no CBOR capability): the browser falls back
// to U2F; the RP gets fido-u2f attestation chained to the ferrokey root, and
// sign-ins whose counter increases; the key saw U2F commands only.
async function u2fKey(t) {
  return withKeys(async () => {
    const k = await addKey(t, "u2f", "u2f");
    const reg = await register(t, { user: "ulla", residentKey: "discouraged", attestation: "direct" });
    check(reg.fmt === "fido-u2f", `attestation format ${reg.fmt}, wanted fido-u2f`);
    check(reg.chainVerified === true, "the fido-u2f certificate does not chain to ferrokey's root");
    check(reg.bogusRootRejected === true, "negative control: the chain also verified against a bogus root");
    check(/^fido-u2f: FidoU2FAttestation/.test(reg.pythonFido2 || ""), `python-fido2: ${reg.pythonFido2}`);
    check(/^0{8}-0{4}-0{4}-0{4}-0{12}$/.test(reg.aaguid), `AAGUID ${reg.aaguid} (U2F has none)`);
    deviceBound(reg, "registration");
    const a1 = await signIn(t, [reg.id]);
    const a2 = await signIn(t, [reg.id]);
    check(a1.signCount > a1.prevSignCount && a2.signCount > a1.signCount,
      `counter did not increase: ${a2.counterHistory}`);
    const seen = await api("/api/keys/commands", { name: "u2f" });
    check(seen.ok, seen.error);
    const ok = (c) => seen.commands.some((x) => x.command === c && x.status === "SW_NO_ERROR");
    check(ok("U2F_REGISTER") && ok("U2F_AUTHENTICATE"),
      `the key did not answer U2F_REGISTER and U2F_AUTHENTICATE: ${JSON.stringify(seen.commands)}`);
    const cbor = seen.commands.filter((x) => !x.command.startsWith("U2F_"));
    check(!cbor.length, `the key answered CTAP2 commands: ${JSON.stringify(cbor)}`);
    const names = [...new Set(seen.commands.map((x) => x.command))].join(", ");
    return `key ${k.authenticatorId} (${k.profile}): registration fmt fido-u2f, x5c chains to the ferrokey ` +
      `root (bogus root rejected; ${reg.pythonFido2.split(",")[0]}); sign-ins verified, counter ` +
      `${a2.counterHistory.join(" -> ")}; the key saw ${names} (no CTAP2)`;
  });
}

// c. A key cloned through the control API: both copies sign in, the
// counters diverge, and the RP (py_webauthn checks counters) rejects the one
// that is behind.
async function lifecycleClone(t) {
  return withKeys(async () => {
    const k = await addKey(t, "original", "security-key", WITH_UV);
    const reg = await register(t, { user: "carl", residentKey: "discouraged", attestation: "none" });
    const first = await signIn(t, [reg.id]);
    const c = await api("/api/keys/clone", { of: "original", name: "clone" });
    check(c.ok, `clone through the control API failed: ${c.error}`);
    check(c.clonedEvent === true, "no `cloned` event on the original");
    check(c.busid !== k.busid && c.serial !== k.serial, "the clone is the same USB device");
    const held = await keyCredential("clone", reg.id);
    check(held.signCount === first.signCount,
      `the clone holds counter ${held.signCount}, the original signed ${first.signCount}`);
    await useKey(t, "clone");
    const onClone = await signIn(t, [reg.id]);
    check(onClone.signCount > first.signCount, `clone counter ${first.signCount} -> ${onClone.signCount}`);
    // Each key's own counter, read while it is plugged (an unplugged in-guest
    // key is powered off, and a powered-off key answers no Get Credentials).
    const cl = await keyCredential("clone", reg.id);
    await useKey(t, "original");
    const behind = await signInVerdict(t, [reg.id]);
    check(!behind.ok, `the RP accepted the original after the clone signed in (${JSON.stringify(behind)})`);
    check(/sign count/i.test(behind.error), `the RP refused, but not for the counter: ${behind.error}`);
    const o = await keyCredential("original", reg.id);
    check(o.signCount <= onClone.signCount && cl.signCount === onClone.signCount,
      `Get Credentials: original ${o.signCount}, clone ${cl.signCount}`);
    return `original (key ${k.authenticatorId}) signed in at ${first.signCount}; clone (key ` +
      `${c.authenticatorId}, busid ${c.busid}) accepted at ${onClone.signCount}; the original, signing ` +
      `${o.signCount}, refused: ${behind.error}`;
  });
}

// d. Migration: a passkey registered on a security-key key, exported as CXF
// and imported into a synced-passkey key through the control API, signs in from
// the new key and verifies with the public key registered originally.
async function lifecycleMigration(t) {
  return withKeys(async () => {
    const src = await addKey(t, "source", "security-key", WITH_UV);
    const reg = await register(t, { user: "mia", residentKey: "required", attestation: "none" });
    deviceBound(reg, "registration");
    check(reg.signCount === 0, `registration signCount ${reg.signCount} (a used passkey is not exported)`);
    const dst = await addKey(t, "target", "synced-passkey", {}, false);
    const m = await api("/api/keys/migrate", { from: "source", to: "target" });
    check(m.ok, `CXF export/import failed: ${m.error}`);
    check(m.exported.includes(reg.id) && m.imported.includes(reg.id),
      `the passkey was not carried: exported ${m.exported}, imported ${m.imported}`);
    await useKey(t, "target");
    const a = await signIn(t, [reg.id]);
    check(a.id === reg.id, "signed in with another credential");
    backedUp(a, "assertion from the new provider");
    check(a.be === true && a.bs === true, `assertion flags BE=${a.be} BS=${a.bs}`);
    const cxf = m.version ? `CXF v${m.version.major}.${m.version.minor}` : "CXF";
    return `registered on key ${src.authenticatorId} (security-key, single_device); ${cxf} ` +
      `export of ${m.exported.length}, imported into key ${dst.authenticatorId} (synced-passkey); the sign-in ` +
      `from it verified with the original public key: ${a.deviceType}, BE=1 BS=1, userHandle matches ` +
      `${a.userHandleMatches}, counter ${a.prevSignCount} -> ${a.signCount}`;
  });
}

const SCENARIOS = [
  ["nonresident-register-signin", nonResident],
  ["discoverable-register-signin", discoverable],
  ["exclude-credentials", excluded],
  ["attestation-direct", attestationDirect],
  ["counter-and-flags", counterAndFlags],
  ["instrument-seeded-signin", seededSignIn],
  ["instrument-bogus-signature", bogusSignature],
  ["instrument-bad-up", badUp],
  ["profile-synced-passkey", syncedPasskey],
  ["profile-u2f", u2fKey],
  ["lifecycle-clone", lifecycleClone],
  ["lifecycle-migration", lifecycleMigration],
];

async function main() {
  await log(`page loaded in ${BROWSER}: ${navigator.userAgent}; secure context ${window.isSecureContext}; ` +
            `focus ${document.hasFocus()}; visibility ${document.visibilityState}`);
  for (const [name, fn] of SCENARIOS) {
    if (ONLY.length && !ONLY.includes(name)) continue;
    const timings = {};
    const t0 = performance.now();
    let ok = false, detail = "";
    try {
      detail = await fn(timings);
      ok = true;
    } catch (e) {
      detail = e instanceof Fail ? e.message : `${e.name}: ${e.message}`;
    }
    timings.scenario_ms = Math.round(performance.now() - t0);
    show(`${ok ? "PASS" : "FAIL"} ${name}: ${detail}`, ok ? "PASS" : "FAIL");
    await api("/api/result", { scenario: name, ok, detail, timings });
  }
  await api("/api/done", { userAgent: navigator.userAgent });
  show("done");
}

main().catch((e) => api("/api/log", { msg: "page error: " + e }).finally(() => api("/api/done", {})));
