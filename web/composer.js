// The composer under the open conversation: a textarea that grows with its text (Enter
// sends, Shift+Enter or a composition in progress makes a new line), a picture button,
// typing signals while there is text, and the reason a send failed. What is sent goes
// to the open conversation (conversation.js), which seals and queues it.

import { explain } from './api.js';

const MAX_HEIGHT_PX = 160;

export class Composer {
  /** els: {form, text, image, error}; conversation(): the open Conversation or null. */
  constructor({ els, conversation }) {
    this.els = els;
    this.conversation = conversation;
  }

  listen() {
    this.els.form.addEventListener('submit', (event) => this.onSend(event));
    this.els.text.addEventListener('keydown', (event) => this.onKey(event));
    this.els.text.addEventListener('input', () => this.onInput());
    this.els.image.addEventListener('change', () => this.onImage());
  }

  error(text) {
    this.els.error.textContent = text;
  }

  async onSend(event) {
    event.preventDefault();
    const conversation = this.conversation();
    const input = this.els.text;
    const text = input.value;
    if (!conversation || !text.trim()) return;
    input.value = '';
    this.fit();
    this.error('');
    try {
      await conversation.sendText(text);
    } catch (err) {
      if (!input.value) input.value = text;
      this.error(`Not sent: ${explain(err)}`);
    }
  }

  /** Enter sends; Shift+Enter (or a composition in progress) makes a new line. */
  onKey(event) {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.els.form.requestSubmit();
    }
  }

  onInput() {
    this.fit();
    const conversation = this.conversation();
    if (conversation) conversation.typing(this.els.text.value.trim() !== '');
  }

  fit() {
    const input = this.els.text;
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight, MAX_HEIGHT_PX)}px`;
  }

  async onImage() {
    const input = this.els.image;
    const file = input.files && input.files[0];
    input.value = '';
    const conversation = this.conversation();
    if (!file || !conversation) return;
    this.error('');
    try {
      await conversation.sendImage(file);
    } catch (err) {
      this.error(`Not sent: ${explain(err)}`);
    }
  }
}
