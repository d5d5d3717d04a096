// Generated from contracts/codes.py by `python -m contracts export`: do not edit.
export const ERRORS = {
  "bad_json": {
    "cause": "the frame is not JSON",
    "code": "bad_json"
  },
  "binary_frame": {
    "cause": "a binary frame (frames are JSON text)",
    "code": "binary_frame"
  },
  "envelope_mismatch": {
    "cause": "the envelope's room, sender or kind differs from the room, the token's user or the frame's kind",
    "code": "envelope_mismatch"
  },
  "invalid_frame": {
    "cause": "not an object, a missing or mistyped field, an id outside [A-Za-z0-9_-]{1,64}, an unknown kind, an envelope out of shape, a bad cursor",
    "code": "invalid_frame"
  },
  "not_friends": {
    "cause": "v2: the peer is not an accepted friend (or not a user; or the friendship ended: unfriend, block, a deleted account)",
    "code": "not_friends"
  },
  "not_your_device": {
    "cause": "v2: a `fetched` frame names a device that is not a live device of the token's user",
    "code": "not_your_device"
  },
  "publish_failed": {
    "cause": "the broker did not confirm in time; resend the same frame (same id)",
    "code": "publish_failed"
  },
  "rate_limited": {
    "cause": "v2: typing signals faster than DUET_TYPING_PER_S; the signal was dropped",
    "code": "rate_limited"
  },
  "sync_failed": {
    "cause": "history could not be read; send `sync` again",
    "code": "sync_failed"
  },
  "sync_needed": {
    "cause": "v2: the gateway's broker connection was lost and restored, so live frames may have been missed: send `sync` again now (the socket stays open)",
    "code": "sync_needed"
  },
  "too_large": {
    "cause": "the ciphertext exceeds the limit of its kind (DUET_MAX_TEXT_BYTES, DUET_MAX_IMAGE_BYTES, or 512 bytes for a receipt or typing signal)",
    "code": "too_large"
  },
  "too_many_bytes": {
    "cause": "the user sent DUET_BYTES_PER_DAY bytes of ciphertext this UTC day (all sockets and gateways together)",
    "code": "too_many_bytes"
  },
  "too_many_messages": {
    "cause": "the user sent DUET_MESSAGES_PER_MINUTE messages this UTC minute (all sockets and gateways together); send it again (same id) next minute",
    "code": "too_many_messages"
  },
  "unavailable": {
    "cause": "v2: storage did not answer (a `read` or `fetched` position was not kept); send it again",
    "code": "unavailable"
  },
  "unknown_type": {
    "cause": "a `type` this protocol does not have (or none)",
    "code": "unknown_type"
  }
};
export const CLOSES = {
  "1008": {
    "cause": "the frame rate limit, the sockets-per-address limit, or a foreign Origin",
    "code": 1008,
    "name": "policy",
    "retry": "backoff"
  },
  "1009": {
    "cause": "a frame over DUET_MAX_FRAME_BYTES (do not send it again)",
    "code": 1009,
    "name": "too_large",
    "retry": "backoff"
  },
  "1011": {
    "cause": "storage unavailable while opening",
    "code": 1011,
    "name": "unavailable",
    "retry": "backoff"
  },
  "1012": {
    "cause": "the gateway is shutting down: reconnect elsewhere",
    "code": 1012,
    "name": "restarting",
    "retry": "now"
  },
  "1013": {
    "cause": "the socket missed frames: it fell more than DUET_OUTBOX_FRAMES or DUET_OUTBOX_BYTES behind, or (v1) its gateway's broker connection was lost and restored: reconnect and sync",
    "code": 1013,
    "name": "too_far_behind",
    "retry": "backoff"
  },
  "4401": {
    "cause": "no token, a bad or expired one, one of no user, or its session ended (logout, revocation, a password change, expiry)",
    "code": 4401,
    "name": "not_authenticated",
    "retry": "never"
  },
  "4403": {
    "cause": "v1: the peer is not an accepted friend (or not a user), or the friendship ended while the socket was open (unfriend, block, a deleted account)",
    "code": 4403,
    "name": "forbidden_room",
    "retry": "never"
  },
  "4429": {
    "cause": "the user already has DUET_MAX_SOCKETS_PER_USER sockets open (all gateways together): close one",
    "code": 4429,
    "name": "too_many_sockets",
    "retry": "backoff"
  }
};
