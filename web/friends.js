// Friends and friend requests: the requests to accept, the ones sent and waiting, and the
// search for a user by name (with the button that asks them, and Unfriend, Block and
// Unblock). app.js polls refresh(); the list is redrawn only when it changed, so the poll
// never takes the focus from a button.

import { ApiError, explain } from './api.js';
import { clear, h } from './dom.js';

export class Friends {
  /**
   * me: this user's id; els: {requests, searchResult}; onNewFriend(): someone became a
   * friend (the conversation list asks again).
   */
  constructor({ api, me, els, onNewFriend }) {
    Object.assign(this, { api, me, els, onNewFriend });
    this.list = []; // [{user_id, username, status}] as GET /api/friends last said
    this.searched = null; // the user the search result is about, while it shows their status
    this.closed = false;
  }

  /** Forget what is shown; safe twice. */
  close() {
    this.closed = true;
    clear(this.els.requests);
    clear(this.els.searchResult);
  }

  async refresh() {
    if (this.closed) return;
    let friends;
    try {
      friends = await this.api.friends();
    } catch {
      return; // asked again at the next poll
    }
    if (this.closed) return;
    const accepted = (list) => list.filter((f) => f.status === 'accepted').map((f) => f.user_id).sort().join();
    const newFriend = accepted(friends) !== accepted(this.list); // gained or lost one
    if (JSON.stringify(friends) === JSON.stringify(this.list) && this.list.length) return;
    this.list = friends;
    this.render();
    // A search result about someone whose status changed would be stale: it goes.
    if (this.searched && friends.some((f) => f.user_id === this.searched.id && f.status !== this.searched.status)) {
      clear(this.els.searchResult);
      this.searched = null;
    }
    if (newFriend) await this.onNewFriend();
  }

  render() {
    const list = clear(this.els.requests);
    for (const f of this.list) {
      if (f.status === 'incoming') {
        list.append(h('li', { class: 'friend incoming', dataset: { user: f.user_id, status: f.status } },
          h('span', { class: 'name', text: `${f.username} wants to chat` }),
          h('button', { type: 'button', class: 'accept', onclick: () => this.accept(f) }, 'Accept'),
          h('button', { type: 'button', class: 'secondary decline', onclick: () => this.unfriend(f) }, 'Decline'),
          h('button', { type: 'button', class: 'secondary block', onclick: () => this.block(f.username) }, 'Block')));
      } else if (f.status === 'outgoing') {
        list.append(h('li', { class: 'friend outgoing', dataset: { user: f.user_id, status: f.status } },
          h('span', { class: 'name', text: f.username }),
          h('span', { class: 'muted', text: 'request sent' }),
          h('button', { type: 'button', class: 'secondary cancel', onclick: () => this.unfriend(f) }, 'Cancel')));
      }
    }
  }

  async accept(friend) {
    try {
      await this.api.acceptFriend(friend.user_id);
    } catch (err) {
      this.result(explain(err), true);
    }
    await this.refresh();
  }

  /** End the friendship, or withdraw or decline the request; the pair's rooms close. */
  async unfriend(friend) {
    if (friend.status === 'accepted' && !window.confirm(`Unfriend ${friend.username}? You can ask again later.`)) return;
    try {
      await this.api.unfriend(friend.user_id);
      if (friend.status === 'accepted') this.result(`You and ${friend.username} are no longer friends.`);
    } catch (err) {
      this.result(explain(err), true);
    }
    await this.refresh();
  }

  /** Block a user (friend or not): no friendship, request, room or message from them. */
  async block(username) {
    if (!window.confirm(`Block ${username}? They will not be told.`)) return;
    try {
      const blocked = await this.api.block(username);
      this.searched = null;
      this.result(`${blocked.username} is blocked.`, false, this.unblockButton(blocked));
    } catch (err) {
      this.result(explain(err), true);
    }
    await this.refresh();
  }

  unblockButton(blocked) {
    return h('button', {
      type: 'button', class: 'secondary unblock',
      onclick: async () => {
        try {
          await this.api.unblock(blocked.user_id);
          this.result(`${blocked.username} is no longer blocked.`);
        } catch (err) {
          this.result(explain(err), true);
        }
        await this.refresh();
      },
    }, 'Unblock');
  }

  /** A line (and buttons) under the search box. */
  result(text, error = false, ...extra) {
    const box = clear(this.els.searchResult);
    box.append(h('p', { class: error ? 'error' : '', text }), ...extra);
  }

  /** Look a user up by name and say where they stand, with a button to ask them. */
  async search(name) {
    let user;
    try {
      user = await this.api.user(name);
    } catch (err) {
      this.result(err instanceof ApiError && err.status === 404 ? `No user named “${name}”.` : explain(err), true);
      return;
    }
    if (user.user_id === this.me) {
      this.result('That is you.');
      return;
    }
    let blocked = [];
    try {
      blocked = await this.api.blocks();
    } catch {
      // shown as not blocked; the server still refuses what a block forbids
    }
    if (blocked.some((b) => b.user_id === user.user_id)) {
      this.searched = null;
      this.result(`You blocked ${user.username}.`, false, this.unblockButton(user));
      return;
    }
    const known = this.list.find((f) => f.user_id === user.user_id);
    this.searched = { id: user.user_id, status: known ? known.status : null };
    const block = h('button', { type: 'button', class: 'secondary block', onclick: () => this.block(user.username) }, 'Block');
    if (known && known.status === 'accepted') {
      const unfriend = h('button', { type: 'button', class: 'secondary unfriend', onclick: () => this.unfriend(known) }, 'Unfriend');
      this.result(`${user.username} is your friend.`, false, unfriend, block);
      return;
    }
    if (known && known.status === 'outgoing') {
      this.result(`You asked ${user.username} already; waiting for them to accept.`, false, block);
      return;
    }
    const label = known && known.status === 'incoming' ? 'Accept friend request' : 'Send friend request';
    const button = h('button', { type: 'button', id: 'request-friend' }, label);
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        const friend = await this.api.requestFriend(user.username);
        this.searched = { id: user.user_id, status: friend.status };
        this.result(friend.status === 'accepted' ? `You and ${friend.username} are friends now.`
          : `Friend request sent to ${friend.username}.`);
      } catch (err) {
        this.result(explain(err), true);
      }
      await this.refresh();
    });
    this.result(`${user.username}`, false, button, block);
  }
}
