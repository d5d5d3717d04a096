// The open conversation's stored history, a page at a time (the newest first, older ones
// as the user scrolls up), and what this browser remembers of it between visits: the
// newest link of each other device's chain, so a history rewritten since is noticed
// (ChainBook.checkHeads decides; this module fetches and keeps).

import * as store from './store.js';

export const PAGE_SIZE = 25;
const KINDS = 'text,image,receipt';
const SAVE_HEADS_MS = 300;

export class History {
  /** chains: the conversation's ChainBook (told when the oldest page is in). */
  constructor({ api, me, peer, room, chains }) {
    Object.assign(this, { api, peer, chains });
    this.headsKey = `${me.id}/${room}`;
    this.next = null; // the cursor to ask older messages before; null: the start is loaded
    this.loading = false;
    this.heads = {};
    this.headsChecked = false;
    this.headsTimer = null;
    this.closed = false;
  }

  close() {
    this.closed = true;
    clearTimeout(this.headsTimer);
  }

  /** The newest page, asked again with back-off while the server is unreachable (null once closed). */
  async first() {
    this.heads = (await store.get('heads', this.headsKey)) ?? {};
    for (let delay = 500; !this.closed; delay = Math.min(delay * 2, 10_000)) {
      try {
        return this.took(await this.api.messages(this.peer.id, { before: 'latest', limit: PAGE_SIZE, kinds: KINDS }));
      } catch (err) {
        if (err.status !== 0 && err.status < 500) throw err;
        await new Promise((resolve) => { setTimeout(resolve, delay * (0.5 + Math.random() / 2)); });
      }
    }
    return null;
  }

  get more() {
    return Boolean(this.next) && !this.closed;
  }

  /** The page before what is loaded, handed to `handle` (one page at a time); false if none was due. */
  async older(handle) {
    if (this.loading || !this.more) return false;
    this.loading = true;
    try {
      await handle(this.took(await this.api.messages(this.peer.id, { before: this.next, limit: PAGE_SIZE, kinds: KINDS })));
      return true;
    } finally {
      this.loading = false;
    }
  }

  took(page) {
    this.next = page.next;
    if (page.next === null) this.chains.atStart = true;
    return page;
  }

  /** Once, after the first page and a first sync: the alerts of a history changed since. */
  checkHeads(own) {
    if (this.headsChecked) return [];
    this.headsChecked = true;
    const alerts = this.chains.checkHeads(this.heads);
    this.saveHeads(own);
    return alerts;
  }

  saveHeadsSoon(own) {
    if (!this.headsChecked) return;
    clearTimeout(this.headsTimer);
    this.headsTimer = setTimeout(() => this.saveHeads(own), SAVE_HEADS_MS);
  }

  /** Remember the newest link of each other device's chain (`own`: this device's kid). */
  async saveHeads(own) {
    const heads = this.chains.rememberHeads(this.heads, own);
    if (!heads) return;
    this.heads = heads;
    await store.put('heads', this.headsKey, heads);
  }
}
