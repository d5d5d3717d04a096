// The REST half of the v1 contract. The token travels in the Authorization header only.

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
  }
}

export class Api {
  constructor(token = null, { onUnauthenticated = null } = {}) {
    this.token = token;
    this.onUnauthenticated = onUnauthenticated;
  }

  async call(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store', credentials: 'omit', redirect: 'error',
      });
    } catch {
      throw new ApiError(0, 'network', 'the server cannot be reached');
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const error = new ApiError(response.status, data?.code ?? 'http_error',
        data?.detail ?? `${response.status} ${response.statusText}`);
      if (response.status === 401 && this.token && this.onUnauthenticated) this.onUnauthenticated(error);
      throw error;
    }
    return data;
  }

  register(username, password) {
    return this.call('POST', '/api/register', { username, password });
  }

  async login(username, password) {
    const token = await this.call('POST', '/api/login', { username, password });
    this.token = token.access_token;
    return token;
  }

  user(username) {
    return this.call('GET', `/api/users/${encodeURIComponent(username)}`);
  }

  publishKeys(devices) {
    return this.call('PUT', '/api/keys', { keys: devices });
  }

  /** Decline a device waiting for approval (it can never publish these keys again). */
  removeKey(kid) {
    return this.call('DELETE', `/api/keys/${encodeURIComponent(kid)}`);
  }

  /** Replace the account's device list with a newer one ({list, sig}) its identity key signed. */
  putDeviceList(signed) {
    return this.call('PUT', '/api/devicelist', signed);
  }

  async friends() {
    return (await this.call('GET', '/api/friends')).friends;
  }

  requestFriend(username) {
    return this.call('POST', '/api/friends', { username });
  }

  acceptFriend(userId) {
    return this.call('POST', `/api/friends/${encodeURIComponent(userId)}/accept`);
  }

  /** End a friendship, or withdraw or decline a request (friends.js). */
  unfriend(userId) {
    return this.call('DELETE', `/api/friends/${encodeURIComponent(userId)}`);
  }

  block(username) {
    return this.call('POST', '/api/blocks', { username });
  }

  unblock(userId) {
    return this.call('DELETE', `/api/blocks/${encodeURIComponent(userId)}`);
  }

  async blocks() {
    return (await this.call('GET', '/api/blocks')).blocks;
  }

  /** Delete the account for good; the password is asked again. */
  deleteAccount(password) {
    return this.call('DELETE', '/api/account', { password });
  }

  messages(peerId, { before = null, after = null, limit = 50, kinds = null } = {}) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (before) query.set('before', before);
    if (after) query.set('after', after);
    if (kinds) query.set('kinds', kinds);
    return this.call('GET', `/api/rooms/${encodeURIComponent(peerId)}/messages?${query}`);
  }

  async conversations() {
    return (await this.call('GET', '/api/conversations')).conversations;
  }

  settings() {
    return this.call('GET', '/api/settings');
  }

  updateSettings(changes) {
    return this.call('PUT', '/api/settings', changes);
  }

  // -- prekeys (sessionstore.js, targets.js) --
  /** [{kid, spk_id, one_time_left}] of this user's devices that published a bundle. */
  prekeyStock() {
    return this.call('GET', '/api/prekeys');
  }

  /** This device's bundle and new one-time prekeys ({bundle, one_time}). */
  publishPrekeys(upload) {
    return this.call('PUT', '/api/prekeys', upload);
  }

  /** A bundle, with one one-time prekey each, of the user's devices `kids`: [{bundle, one_time}]. */
  async claimPrekeys(userId, kids) {
    const query = new URLSearchParams({ devices: kids.join(',') });
    return (await this.call('GET', `/api/prekeys/${encodeURIComponent(userId)}?${query}`)).devices;
  }

  // -- history shares (sharing.js) --
  putHistoryShare(share) {
    return this.call('PUT', '/api/history-shares', share);
  }

  /** Every part shared with this user's device `kid`. */
  async historyShares(kid) {
    return (await this.call('GET', `/api/history-shares?${new URLSearchParams({ to: kid })}`)).shares;
  }

  // -- sessions (sessions.js) --
  async sessions() {
    return (await this.call('GET', '/api/sessions')).sessions;
  }

  revokeSession(id) {
    return this.call('DELETE', `/api/sessions/${encodeURIComponent(id)}`);
  }

  /** End this token's session (everywhere: every session of the user). */
  logout({ everywhere = false } = {}) {
    return this.call('POST', `/api/logout${everywhere ? '?everywhere=true' : ''}`);
  }

  /** A fresh token for the same session, whose expiry moves forward. */
  async renew() {
    const token = await this.call('POST', '/api/sessions/renew');
    this.token = token.access_token;
    return token;
  }
}

/** What an error means to the person using the page. */
export function explain(err) {
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
