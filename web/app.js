// The duet web client: sign up / log in, this browser's device keys, friends, and one open
// conversation at a time. Plain ES modules, no build step, nothing from another origin.
//
// The access token lives in sessionStorage (this tab only) and travels in the
// Authorization header and the WebSocket subprotocol list, never in a URL. The device's
// private keys are non-extractable CryptoKey objects in IndexedDB.

import { Api, ApiError } from './api.js';
import { Conversation } from './conversation.js';
import { generateDevice } from './crypto.js';
import { $, clear, h } from './dom.js';
import * as store from './store.js';

const SESSION_KEY = 'duet.session';
const PEER_KEY = 'duet.peer';
const FRIENDS_POLL_MS = 4000;

const app = {
  api: null,
  session: null,
  device: null,
  friends: [],
  conversation: null,
  poll: null,
};

// -- session -------------------------------------------------------------------------
function savedSession() {
  try {
    const session = JSON.parse(sessionStorage.getItem(SESSION_KEY));
    if (session && session.token && session.userId && session.expiresAt > Date.now()) return session;
  } catch {
    // a damaged entry is the same as none
  }
  return null;
}

function explain(err) {
  if (!(err instanceof ApiError)) return err.message || String(err);
  switch (err.code) {
    case 'conflict':
      return err.status === 409 && /taken/.test(err.message) ? 'That username is taken.' : err.message;
    case 'unauthenticated':
      return 'Wrong username or password.';
    case 'invalid_request':
      return 'Usernames are 3–32 letters, digits or _; passwords at least 8 characters.';
    case 'network':
      return 'The server cannot be reached. Check your connection and try again.';
    default:
      return err.message;
  }
}

function authStatus(text, error = false) {
  const el = $('auth-status');
  el.textContent = text;
  el.classList.toggle('error', error);
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
    await start({
      token: token.access_token,
      userId: token.user_id,
      username: profile.username,
      expiresAt: Date.now() + token.expires_in * 1000,
    });
    authStatus('');
  } catch (err) {
    authStatus(explain(err), true);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

/**
 * This browser's device for the user: generated once (RSA-OAEP 2048 and ECDSA P-256,
 * private keys not extractable), kept in IndexedDB, and published on every login.
 */
async function ensureDevice(api, userId) {
  return (navigator.locks ? (fn) => navigator.locks.request(`duet-device/${userId}`, fn) : (fn) => fn())(async () => {
    let device = await store.get('devices', userId);
    for (let attempt = 0; attempt < 2; attempt += 1) {
      if (!device) {
        device = { ...(await generateDevice()), created: Date.now() };
        await store.put('devices', userId, device);
      }
      try {
        await api.publishKeys([{ enc: device.encSpki, sig: device.sigSpki, label: 'web browser' }]);
        return device;
      } catch (err) {
        // This device was revoked (from another device): start over with new keys.
        if (!(err instanceof ApiError && err.status === 409 && /revoked/.test(err.message))) throw err;
        device = null;
      }
    }
    throw new Error('could not publish this browser’s keys');
  });
}

async function start(session) {
  app.api = new Api(session.token, { onUnauthenticated: () => logout('Your session expired. Log in again.') });
  app.device = await ensureDevice(app.api, session.userId);
  app.session = session;
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  $('auth').hidden = true;
  $('app').hidden = false;
  $('me-name').textContent = session.username;
  $('me-device').textContent = `device ${app.device.kid.slice(0, 8)}`;
  await refreshFriends();
  clearInterval(app.poll);
  app.poll = setInterval(() => {
    if (document.visibilityState === 'visible') refreshFriends();
  }, FRIENDS_POLL_MS);
  const peer = sessionStorage.getItem(PEER_KEY);
  if (peer) await openFriend(peer);
}

function logout(reason = '') {
  clearInterval(app.poll);
  closeConversation();
  sessionStorage.removeItem(SESSION_KEY);
  sessionStorage.removeItem(PEER_KEY);
  app.api = null;
  app.session = null;
  app.device = null;
  app.friends = [];
  clear($('friends'));
  clear($('search-result'));
  $('app').hidden = true;
  $('auth').hidden = false;
  authStatus(reason, Boolean(reason));
}

// -- friends -------------------------------------------------------------------------
async function refreshFriends() {
  if (!app.api) return;
  let friends;
  try {
    friends = await app.api.friends();
  } catch {
    return; // asked again at the next poll
  }
  // Re-render only on a change, so the poll never takes the focus from a button.
  if (JSON.stringify(friends) === JSON.stringify(app.friends) && $('friends').childElementCount) return;
  app.friends = friends;
  renderFriends();
}

const STATUS_ORDER = { incoming: 0, accepted: 1, outgoing: 2 };

function renderFriends() {
  const list = clear($('friends'));
  if (!app.friends.length) {
    list.append(h('li', { class: 'muted', text: 'No friends yet: find someone by username.' }));
    return;
  }
  const sorted = [...app.friends].sort((a, b) => (STATUS_ORDER[a.status] - STATUS_ORDER[b.status])
    || a.username.localeCompare(b.username));
  const open = app.conversation && app.conversation.peer.id;
  for (const f of sorted) {
    if (f.status === 'accepted') {
      list.append(h('li', { class: 'friend', dataset: { user: f.user_id, status: f.status } },
        h('button', {
          type: 'button', class: 'friend-open', 'aria-current': f.user_id === open ? 'true' : null,
          onclick: () => openFriend(f.user_id),
        }, f.username)));
    } else if (f.status === 'incoming') {
      list.append(h('li', { class: 'friend incoming', dataset: { user: f.user_id, status: f.status } },
        h('span', { class: 'name', text: f.username }),
        h('button', { type: 'button', class: 'accept', onclick: () => accept(f) }, 'Accept')));
    } else {
      list.append(h('li', { class: 'friend outgoing', dataset: { user: f.user_id, status: f.status } },
        h('span', { class: 'name', text: f.username }),
        h('span', { class: 'muted', text: 'request sent' })));
    }
  }
}

async function accept(friend) {
  try {
    await app.api.acceptFriend(friend.user_id);
  } catch (err) {
    searchResult(explain(err), true);
  }
  await refreshFriends();
}

function searchResult(text, error = false, ...extra) {
  const box = clear($('search-result'));
  box.append(h('p', { class: error ? 'error' : '', text }), ...extra);
}

async function onSearch(event) {
  event.preventDefault();
  const name = $('search-username').value.trim();
  if (!name) return;
  let user;
  try {
    user = await app.api.user(name);
  } catch (err) {
    searchResult(err instanceof ApiError && err.status === 404 ? `No user named “${name}”.` : explain(err), true);
    return;
  }
  if (user.user_id === app.session.userId) {
    searchResult('That is you.');
    return;
  }
  const known = app.friends.find((f) => f.user_id === user.user_id);
  if (known && known.status === 'accepted') {
    searchResult(`${user.username} is already your friend.`);
    return;
  }
  if (known && known.status === 'outgoing') {
    searchResult(`You asked ${user.username} already; waiting for them to accept.`);
    return;
  }
  const label = known && known.status === 'incoming' ? 'Accept friend request' : 'Send friend request';
  const button = h('button', { type: 'button', id: 'request-friend' }, label);
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      const friend = await app.api.requestFriend(user.username);
      searchResult(friend.status === 'accepted' ? `You and ${friend.username} are friends now.`
        : `Friend request sent to ${friend.username}.`);
    } catch (err) {
      searchResult(explain(err), true);
    }
    await refreshFriends();
  });
  searchResult(`${user.username}`, false, button);
}

// -- conversation --------------------------------------------------------------------
function closeConversation() {
  if (app.conversation) app.conversation.close();
  app.conversation = null;
  $('chat').hidden = true;
  $('empty').hidden = false;
}

async function openFriend(peerId) {
  const friend = app.friends.find((f) => f.user_id === peerId && f.status === 'accepted');
  if (!friend) {
    sessionStorage.removeItem(PEER_KEY);
    return;
  }
  if (app.conversation && app.conversation.peer.id === peerId) return;
  closeConversation();
  sessionStorage.setItem(PEER_KEY, peerId);
  $('empty').hidden = true;
  $('chat').hidden = false;
  $('peer-name').textContent = friend.username;
  $('banner').hidden = true;
  $('safety').hidden = true;
  $('notice').hidden = true;
  $('composer-error').textContent = '';
  const conversation = new Conversation({
    api: app.api,
    me: { id: app.session.userId, name: app.session.username },
    device: app.device,
    peer: { id: friend.user_id, name: friend.username },
    els: {
      list: $('messages'), state: $('conn-state'), banner: $('banner'), bannerText: $('banner-text'),
      safety: $('safety'), safetyNumber: $('safety-number'), notice: $('notice'),
    },
    onFatal: (detail) => {
      if (/authenticated/.test(detail)) logout('Your session expired. Log in again.');
    },
  });
  app.conversation = conversation;
  renderFriends();
  try {
    await conversation.open();
  } catch (err) {
    if (app.conversation === conversation) conversation.notice(`Could not open the conversation: ${explain(err)}`);
  }
  if (app.conversation === conversation) $('text').focus();
}

function composerError(text) {
  $('composer-error').textContent = text;
}

async function onSend(event) {
  event.preventDefault();
  const conversation = app.conversation;
  const input = $('text');
  const text = input.value;
  if (!conversation || !text.trim()) return;
  input.value = '';
  composerError('');
  try {
    await conversation.sendText(text);
  } catch (err) {
    if (!input.value) input.value = text;
    composerError(`Not sent: ${explain(err)}`);
  }
}

async function onImage() {
  const input = $('image');
  const file = input.files && input.files[0];
  input.value = '';
  if (!file || !app.conversation) return;
  composerError('');
  try {
    await app.conversation.sendImage(file);
  } catch (err) {
    composerError(`Not sent: ${explain(err)}`);
  }
}

async function onSafety() {
  if (!app.conversation) return;
  try {
    await app.conversation.showSafetyNumber();
  } catch (err) {
    app.conversation.notice(`Could not compute the safety number: ${explain(err)}`);
  }
}

function init() {
  $('auth-form').addEventListener('submit', onAuth);
  $('logout').addEventListener('click', () => logout());
  $('search-form').addEventListener('submit', onSearch);
  $('composer').addEventListener('submit', onSend);
  $('image').addEventListener('change', onImage);
  $('show-safety').addEventListener('click', onSafety);
  $('safety-close').addEventListener('click', () => { $('safety').hidden = true; });
  $('banner-ok').addEventListener('click', () => app.conversation && app.conversation.acceptKeys());
  if (!globalThis.crypto || !globalThis.crypto.subtle) {
    authStatus('This page needs a secure context (https) for its cryptography.', true);
    $('auth').hidden = false;
    return;
  }
  const session = savedSession();
  if (!session) {
    $('auth').hidden = false;
    return;
  }
  resume(session, 1000);
}

/** Start from the saved session; while the server cannot be reached, try again later. */
function resume(session, delay) {
  start(session).catch((err) => {
    if (err instanceof ApiError && (err.status === 0 || err.status >= 500)) {
      $('auth').hidden = false;
      authStatus(`${explain(err)} Trying again…`, true);
      setTimeout(() => resume(session, Math.min(delay * 2, 30_000)), delay);
    } else {
      logout(explain(err));
    }
  });
}

init();
