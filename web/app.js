// The duet web client: sign up / log in, this browser's device keys, friends, and every
// conversation live over one device socket. Plain ES modules, no build step, nothing from
// another origin. This module wires the others and the page together: linking.js (this
// browser's device, and its approval into the account's signed device list), device.js (the
// socket), outbox.js (what leaves), inbox.js (the conversation list), conversation.js (the
// open one), composer.js (what the user writes), friends.js (requests and search),
// devices.js (approving, declining and revoking devices), sharing.js (history shared with
// this browser by the device that approved it, and shared by this one when it approves),
// keyring.js (envelope v3: this device's prekeys, its ratchet sessions with every other
// device, and what it kept of what it read and sent, sealed at rest in IndexedDB).
//
// The session (the access token) is kept in localStorage, so every tab of this browser
// shares one login and logging out in one logs out all (the `storage` event). A script
// injected into the page could read it there, as it could from sessionStorage or memory:
// what stops that is the CSP (no inline or foreign script) and Trusted Types. The token
// only ever travels in the Authorization header and the WebSocket subprotocol list, never
// in a URL, and it expires (DUET_TOKEN_TTL_S); the device's private keys are
// non-extractable CryptoKey objects in IndexedDB, which no stolen token reaches.

import { Api, ApiError, explain } from './api.js';
import { ERRORS } from './codes.js';
import { Composer } from './composer.js';
import { Conversation } from './conversation.js';
import { DeviceSocket } from './device.js';
import { Devices } from './devices.js';
import { Directory } from './directory.js';
import { $, clear } from './dom.js';
import { Friends } from './friends.js';
import { linkCode } from './identity.js';
import { Inbox } from './inbox.js';
import { Keyring } from './keyring.js';
import { approval, enrol } from './linking.js';
import { Outbox } from './outbox.js';
import { Sessions } from './sessions.js';
import { SharedKeys } from './sharing.js';

const SESSION_KEY = 'duet.session';
const PEER_KEY = 'duet.peer';
const FRIENDS_POLL_MS = 4000;
const EXPIRED = 'Your session expired. Log in again to go on.';

const STATE_LABELS = {
  connecting: 'connecting…',
  connected: 'connected',
  lost: 'connection lost — reconnecting…',
  error: 'error',
};

const app = {
  api: null,
  session: null,
  device: null,
  dir: null,
  keyring: null,
  socket: null,
  outbox: null,
  inbox: null,
  friends: null,
  sessions: null,
  devices: null,
  shares: null,
  conversation: null,
  poll: null,
  run: 0, // counts starts and logouts: a start overtaken by a logout stops where it is
};

const composer = new Composer({
  els: { form: $('composer'), text: $('text'), image: $('image'), error: $('composer-error') },
  conversation: () => app.conversation,
});

// -- session -------------------------------------------------------------------------
function savedSession() {
  try {
    const session = JSON.parse(localStorage.getItem(SESSION_KEY));
    if (session && session.token && session.userId && session.expiresAt > Date.now()) return session;
  } catch {
    // a damaged entry is the same as none
  }
  return null;
}

function authStatus(text, error = false) {
  const el = $('auth-status');
  el.textContent = text;
  el.classList.toggle('error', error);
}

function authNotice(text) {
  $('auth-notice').textContent = text;
  $('auth-notice').hidden = !text;
}

async function onAuth(event) {
  event.preventDefault();
  const action = event.submitter && event.submitter.value === 'signup' ? 'signup' : 'login';
  const username = $('auth-username').value.trim();
  const password = $('auth-password').value;
  const buttons = [$('signup'), $('login')];
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const api = new Api();
    if (action === 'signup') {
      authStatus('Creating your account…');
      await api.register(username, password);
    }
    authStatus('Logging in…');
    const token = await api.login(username, password);
    const profile = await api.user(username);
    authStatus('Preparing this browser’s keys…');
    $('auth-password').value = '';
    authNotice('');
    await start({
      token: token.access_token,
      userId: token.user_id,
      username: profile.username,
      expiresAt: Date.now() + token.expires_in * 1000,
      lifetimeMs: token.expires_in * 1000,
    });
    authStatus('');
  } catch (err) {
    authStatus(explain(err), true);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

/**
 * This browser waits for approval (linking.js): its link code, until the account's list
 * names it. True once it does; false if the start was overtaken (a logout) or declined.
 */
async function awaitApproval(dir, me, device, current) {
  const code = await linkCode(device.kid, device.sid);
  if (!current()) return false;
  $('link-code').textContent = code;
  $('pending-status').textContent = 'Waiting for approval…';
  $('auth').hidden = true;
  $('pending').hidden = false;
  try {
    if (!(await approval(app.api, dir, me, device, () => !current()))) return false;
  } catch (err) {
    if (current()) $('pending-status').textContent = explain(err);
    return false;
  }
  $('pending').hidden = true;
  return true;
}

/**
 * This device's prekeys published, or topped up (keyring.js): at start and after each
 * reconnect. Best effort: without them a friend's message to this device falls back to the
 * RSA entry, which still reads.
 */
async function publishPrekeys(keyring) {
  try {
    await keyring.publish();
  } catch (err) {
    console.warn('duet: prekeys not published:', explain(err));
  }
}

/** save: a fresh login, which every tab then shares (a resumed session is there already). */
async function start(session, { save = true } = {}) {
  app.run += 1;
  const run = app.run;
  const current = () => run === app.run;
  app.api = new Api(session.token, { onUnauthenticated: () => logout(EXPIRED) });
  const me = { id: session.userId, name: session.username };
  const dir = new Directory(app.api, me.id);
  const { device, state } = await enrol(app.api, dir, me);
  if (!current()) return;
  app.session = session;
  if (save) localStorage.setItem(SESSION_KEY, JSON.stringify(session));
  // Before anything can be sent to this device, its prekeys are out (the private halves kept first).
  const keyring = new Keyring({ api: app.api, me, device, dir });
  await publishPrekeys(keyring);
  if (!current()) return;
  if (state === 'pending' && !(await awaitApproval(dir, me, device, current))) return;
  app.device = device;
  app.dir = dir;
  app.keyring = keyring;
  app.shares = new SharedKeys({ api: app.api, me, device, dir });
  $('auth').hidden = true;
  $('app').hidden = false;
  $('me-name').textContent = session.username;
  $('me-device').textContent = `device ${app.device.kid.slice(0, 8)}`;
  const socket = new DeviceSocket(session.token, {
    onFrame: onFrame,
    onReady: () => app.inbox.onReady(),
    onConnected: () => {
      app.outbox.resendAll();
      publishPrekeys(keyring); // friends may have claimed the stock low meanwhile
    },
    onState: setConnState,
  });
  app.socket = socket;
  app.outbox = new Outbox(session.userId, (frame) => socket.post(frame));
  app.inbox = new Inbox({
    me, device: app.device, dir: app.dir, socket: app.socket, outbox: app.outbox, list: $('conversations'),
    shared: sharedKeys(app.shares), keyring,
    view: { get open() { return app.conversation ? app.conversation.room : null; }, visible: looking },
    onOpen: (peerId) => openFriend(peerId),
    onChange: onConversationChange,
  });
  app.friends = new Friends({
    api: app.api, me: session.userId, els: { requests: $('requests'), searchResult: $('search-result') },
    onNewFriend: refreshConversations,
  });
  app.sessions = new Sessions({
    api: app.api, session, els: { list: $('sessions'), status: $('sessions-status') },
    onRenewed: renewed, onEnded: () => logout('You logged out.'),
  });
  app.sessions.keepRenewed();
  app.devices = new Devices({
    api: app.api, me, device, dir, els: { list: $('devices'), status: $('devices-status') },
    history: keyring.history,
  });
  for (const step of [loadSettings, refreshFriends, refreshConversations, () => app.outbox.restore()]) {
    await step();
    if (!current()) return;
  }
  app.socket.start();
  clearInterval(app.poll);
  app.poll = setInterval(() => {
    if (document.visibilityState === 'visible') refreshFriends();
  }, FRIENDS_POLL_MS);
  const peer = sessionStorage.getItem(PEER_KEY);
  if (peer && current()) await openFriend(peer);
}

function logout(reason = '', { everywhere = true } = {}) {
  app.run += 1;
  clearInterval(app.poll);
  closeConversation();
  if (app.socket) app.socket.close();
  if (app.outbox) app.outbox.close();
  if (app.inbox) app.inbox.close();
  if (app.friends) app.friends.close();
  if (app.sessions) app.sessions.close();
  if (app.devices) app.devices.close();
  if (everywhere) localStorage.removeItem(SESSION_KEY);
  sessionStorage.removeItem(PEER_KEY);
  Object.assign(app, {
    api: null, session: null, device: null, dir: null, keyring: null, socket: null, outbox: null, inbox: null,
    friends: null, sessions: null, devices: null, shares: null,
  });
  clear($('conversations'));
  $('me-name').textContent = '';
  document.title = 'duet';
  document.body.classList.remove('in-chat');
  $('app').hidden = true;
  $('pending').hidden = true;
  $('settings').hidden = true;
  $('auth').hidden = false;
  authNotice(reason);
  authStatus('');
}

/**
 * The Log out button: every tab of this browser logs out (through localStorage) before the
 * server ends the session, so none mistakes the closing of its socket for an expiry; then
 * the session ends on the server, so the token is worthless wherever it was copied.
 */
async function signOut() {
  const token = app.session ? app.session.token : null;
  logout();
  if (!token) return;
  try {
    await new Api(token).logout();
  } catch {
    // unreachable or already ended: this browser has forgotten the token all the same
  }
}

/** Delete account (settings): asked to confirm, with the password; then this browser forgets it. */
async function deleteAccount(event) {
  event.preventDefault();
  const api = app.api;
  const input = $('delete-password');
  if (!api || !input.value) return;
  if (!window.confirm('Delete your account and every conversation it was in? This cannot be undone.')) return;
  try {
    await api.deleteAccount(input.value);
  } catch (err) {
    $('delete-status').textContent = err instanceof ApiError && err.status === 403
      ? 'That is not your password.' : explain(err);
    return;
  } finally {
    input.value = '';
  }
  logout('Your account was deleted.');
}

/** A renewed token (sessions.js): the same session, a later expiry; every tab adopts it. */
function renewed(token) {
  if (!app.session) return;
  Object.assign(app.session, {
    token: token.access_token,
    expiresAt: Date.now() + token.expires_in * 1000,
    lifetimeMs: token.expires_in * 1000,
  });
  localStorage.setItem(SESSION_KEY, JSON.stringify(app.session));
  if (app.socket) app.socket.token = token.access_token; // for its next connection
}

/** Another tab renewed the token (or logged the same user in): use it, save nothing. */
function adopt(saved) {
  Object.assign(app.session, { token: saved.token, expiresAt: saved.expiresAt, lifetimeMs: saved.lifetimeMs });
  app.api.token = saved.token;
  if (app.socket) app.socket.token = saved.token;
  if (app.sessions) app.sessions.keepRenewed();
}

function setConnState(state, detail = '') {
  const el = $('conn-state');
  el.dataset.state = state;
  el.textContent = state === 'error' ? `error: ${detail}` : STATE_LABELS[state];
  el.title = detail || STATE_LABELS[state] || state;
  if (state === 'error' && /token|authenticated/.test(detail)) logout(EXPIRED);
}

/** The lookup verify.js openVerified takes: a content key shared with this browser. */
function sharedKeys(shares) {
  return (envelope) => shares.keyFor(envelope);
}

// -- frames from the device socket -------------------------------------------------------
function onFrame(frame) {
  if (!app.inbox) return;
  if (frame.type === 'ack') app.outbox.acked(frame, app.keyring.history);
  app.inbox.onFrame(frame);
  const open = app.conversation;
  if (!open) return;
  // Only typing signals are rate limited, and only the open conversation sends them.
  if (frame.type === 'error' && frame.code === ERRORS.rate_limited.code) {
    open.typingSignal.dropped();
    return;
  }
  let room = frame.room ?? null;
  if (!room && frame.type === 'error' && frame.id) room = app.outbox.roomOf(frame.id);
  if (room === open.room && ['message', 'ack', 'stored', 'error', 'unsent'].includes(frame.type)) open.onFrame(frame);
  else if (frame.type === 'ack' || frame.type === 'stored') settleElsewhere(frame);
}

/** An ack for a conversation that is not open: the outbox entry can go. */
async function settleElsewhere(frame) {
  await app.outbox.settle(frame.room ?? app.outbox.roomOf(frame.id), frame.id);
}

function onConversationChange(room, change) {
  const open = app.conversation;
  if (!open || open.room !== room) return;
  if (change.marks) open.applyMarks();
  if (change.alert) open.addAlert(change.alert.frame, change.alert);
  renderPeerStatus();
}

/** Is the user looking at the open conversation (the tab shown, its screen up)? */
function looking() {
  return document.visibilityState === 'visible'
    && (!isPhone() || document.body.classList.contains('in-chat'));
}

function isPhone() {
  return window.matchMedia('(max-width: 700px)').matches;
}

// -- settings ------------------------------------------------------------------------
async function loadSettings() {
  try {
    const settings = await app.api.settings();
    $('set-read-receipts').checked = settings.read_receipts;
    $('set-hide-presence').checked = settings.hide_presence;
    app.inbox.readReceipts = settings.read_receipts;
  } catch {
    // defaults stay; asked again when the panel opens
  }
  $('notify-enable').hidden = !('Notification' in window) || Notification.permission !== 'default';
}

async function onSetting() {
  try {
    const settings = await app.api.updateSettings({
      read_receipts: $('set-read-receipts').checked,
      hide_presence: $('set-hide-presence').checked,
    });
    app.inbox.readReceipts = settings.read_receipts;
  } catch (err) {
    app.friends.result(`Settings not saved: ${explain(err)}`, true);
  }
}

// -- friends and requests (friends.js) -----------------------------------------------------
function refreshFriends() {
  return app.friends ? app.friends.refresh() : undefined;
}

async function refreshConversations() {
  if (!app.api) return;
  try {
    app.inbox.load(await app.api.conversations());
  } catch {
    // the next change of friends asks again
  }
}

async function onSearch(event) {
  event.preventDefault();
  const name = $('search-username').value.trim();
  if (name && app.friends) await app.friends.search(name);
}

// -- the open conversation ---------------------------------------------------------------
function closeConversation() {
  if (app.conversation) app.conversation.close();
  app.conversation = null;
  $('chat').hidden = true;
  $('empty').hidden = false;
}

async function openFriend(peerId) {
  const conv = app.inbox && app.inbox.byPeer(peerId);
  if (!conv) {
    sessionStorage.removeItem(PEER_KEY);
    return;
  }
  document.body.classList.add('in-chat');
  if (app.conversation && app.conversation.peer.id === peerId) {
    app.conversation.markShown();
    return;
  }
  closeConversation();
  app.shares.renew(); // an approval since the last look may have shared the history
  sessionStorage.setItem(PEER_KEY, peerId);
  $('empty').hidden = true;
  $('chat').hidden = false;
  $('peer-name').textContent = conv.peer.name;
  $('banner').hidden = true;
  $('safety').hidden = true;
  $('notice').hidden = true;
  composer.error('');
  const conversation = new Conversation({
    api: app.api,
    me: { id: app.session.userId, name: app.session.username },
    device: app.device,
    peer: { id: conv.peer.id, name: conv.peer.name },
    dir: app.dir,
    shared: sharedKeys(app.shares),
    keyring: app.keyring,
    socket: app.socket,
    outbox: app.outbox,
    inbox: app.inbox,
    els: {
      list: $('messages'), banner: $('banner'), bannerText: $('banner-text'),
      safety: $('safety'), safetyNumber: $('safety-number'), safetyNew: $('safety-new'),
      safetyVerified: $('safety-verified'), safetyMark: $('safety-mark'), notice: $('notice'),
      scheme: $('scheme'),
    },
    looking,
  });
  app.conversation = conversation;
  app.inbox.render();
  renderPeerStatus();
  try {
    await conversation.open();
  } catch (err) {
    if (app.conversation === conversation) conversation.notice(`Could not open the conversation: ${explain(err)}`);
  }
  if (app.conversation === conversation && !isPhone()) $('text').focus();
}

function renderPeerStatus() {
  const open = app.conversation;
  if (!open) return;
  const conv = app.inbox.byPeer(open.peer.id);
  const typing = conv && app.inbox.isTyping(conv);
  $('peer-dot').classList.toggle('online', Boolean(conv && conv.online));
  $('peer-status').textContent = typing ? 'typing…' : conv && conv.online ? 'online' : '';
  $('peer-status').classList.toggle('typing', Boolean(typing));
}

function back() {
  document.body.classList.remove('in-chat');
  closeConversation();
  sessionStorage.removeItem(PEER_KEY);
  app.inbox.render();
}

async function onSafety() {
  if (!app.conversation) return;
  try {
    await app.conversation.showSafetyNumber();
  } catch (err) {
    app.conversation.notice(`Could not compute the safety number: ${explain(err)}`);
  }
}

/** The banner's Accept, or Mark verified: the pin changes, then the composer may send. */
async function onTrust(step) {
  const open = app.conversation;
  if (!open) return;
  try {
    await step(open);
    composer.error('');
  } catch (err) {
    open.notice(`Not saved: ${explain(err)}`);
  }
}

function onLooking() {
  if (app.conversation && looking()) app.conversation.markShown();
  if (app.inbox) app.inbox.render();
}

/** Another tab logged in or out: follow it. */
function onStorage(event) {
  if (event.key !== SESSION_KEY) return;
  const session = savedSession();
  if (!session && app.session) logout('You logged out in another tab.', { everywhere: false });
  else if (session && app.session && app.session.userId === session.userId) {
    if (app.session.token !== session.token) adopt(session);
  } else if (session && (!app.session || app.session.token !== session.token)) {
    if (app.session) logout('', { everywhere: false });
    resume(session, 1000);
  }
}

function init() {
  $('auth-form').addEventListener('submit', onAuth);
  $('logout').addEventListener('click', signOut);
  $('pending-logout').addEventListener('click', signOut);
  $('logout-everywhere').addEventListener('click', () => app.sessions && app.sessions.everywhere());
  $('delete-account-form').addEventListener('submit', deleteAccount);
  $('settings-open').addEventListener('click', () => {
    $('settings').hidden = !$('settings').hidden;
    if (!$('settings').hidden && app.sessions) app.sessions.refresh();
    if (app.devices) {
      if ($('settings').hidden) app.devices.hide();
      else app.devices.open();
    }
  });
  $('set-read-receipts').addEventListener('change', onSetting);
  $('set-hide-presence').addEventListener('change', onSetting);
  $('notify-enable').addEventListener('click', async () => {
    await Notification.requestPermission();
    $('notify-enable').hidden = Notification.permission !== 'default';
  });
  $('search-form').addEventListener('submit', onSearch);
  composer.listen();
  $('show-safety').addEventListener('click', onSafety);
  $('safety-close').addEventListener('click', () => { $('safety').hidden = true; });
  $('banner-ok').addEventListener('click', () => onTrust((open) => open.acceptIdentity()));
  $('safety-mark').addEventListener('click', () => onTrust((open) => open.markVerified()));
  $('back').addEventListener('click', back);
  document.addEventListener('visibilitychange', onLooking);
  window.addEventListener('focus', onLooking);
  window.addEventListener('storage', onStorage);
  if (!globalThis.crypto || !globalThis.crypto.subtle) {
    authStatus('This page needs a secure context (https) for its cryptography.', true);
    $('auth').hidden = false;
    return;
  }
  const session = savedSession();
  if (!session) {
    if (localStorage.getItem(SESSION_KEY)) {
      localStorage.removeItem(SESSION_KEY);
      authNotice(EXPIRED);
    }
    $('auth').hidden = false;
    return;
  }
  resume(session, 1000);
}

/** Start from the saved session; while the server cannot be reached, try again later. */
function resume(session, delay) {
  start(session, { save: false }).catch((err) => {
    if (err instanceof ApiError && (err.status === 0 || err.status >= 500)) {
      $('auth').hidden = false;
      authStatus(`${explain(err)} Trying again…`, true);
      setTimeout(() => resume(session, Math.min(delay * 2, 30_000)), delay);
    } else {
      logout(err instanceof ApiError && err.status === 401 ? EXPIRED : explain(err));
    }
  });
}

init();
