// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * conn_web.lib.js: the emscripten --js-library half of libbvchat's browser
 * transport (client-lib/src/conn_web.c). It only moves bytes between the
 * wasm heap and Module.bvwTransport, which owns the real WebSocket and is
 * written separately. It holds no state but a handle counter. Link with
 *   emcc ... --js-library web-widget/src/conn_web.lib.js
 * (conn_web.c's EMSCRIPTEN_KEEPALIVE functions export themselves). With
 * -sMODULARIZE, "Module" below is the instance: the object given to the
 * factory. Everything runs on the page's (or worker's) one thread.
 *
 * THE CONTRACT WITH Module.bvwTransport
 *
 * The page sets Module.bvwTransport before the first bv_client_connect()
 * (or enroll) to an object with these methods. None may call back into
 * Module.bvwReport (below) before it returns: every report comes later,
 * from a WebSocket event, a timer or a promise.
 *
 *   open(handle, url)
 *     handle: an integer > 0, never reused, naming this attempt.
 *     url: "ws://host:port/v1", or "wss://…" when the page (location) is
 *     https:; an IPv6 host is in brackets. Open
 *       new WebSocket(url, "bvchat.v1")
 *     and report its events for handle. Throw when no attempt can be made
 *     (the library logs it and retries after the backoff); after a return
 *     exactly one closed(handle, …) must follow, even if the socket never
 *     opened. Several handles may be alive at once only briefly (an old
 *     one closing); report each for its own handle.
 *
 *   send(handle, text)
 *     text: one complete JSON frame as a JS string. Send it as a TEXT
 *     frame (ws.send(string); never a Uint8Array or Blob, which would be
 *     binary and refused by the relay). Frames go out in the order given.
 *     THE GATE: the library sends a deliver's ack as soon as its store
 *     call returned, but in the browser the store is durable only once the
 *     page has saved it; so the transport holds frames back until then.
 *     It need not tell acks from other frames (hold them all), but it must
 *     keep their order and must not drop any while the socket is open.
 *     Throw only when the frame cannot be taken at all (handle unknown or
 *     closed); the library then gives the connection up. Never log frames:
 *     an enroll carries the enrollment token (and JS strings cannot be
 *     wiped, so keep no reference after sending).
 *
 *   close(handle, code)
 *     code is 1000 or 3000-4999 (others are mapped to 1000 here, since
 *     WebSocket.close() throws on them). Call ws.close(code); frames the
 *     gate still holds may be sent first or dropped (an unacknowledged
 *     deliver is pushed again on the next connection). The close event is
 *     still reported with closed(). Closing an unknown handle is a no-op.
 *
 *   buffered(handle)   (optional)
 *     Bytes (UTF-8) of frames given to send() not yet on the network: the
 *     gate's plus ws.bufferedAmount. The library counts them against its
 *     max_output_bytes (1 MiB), so a stalled gate or a slow network makes
 *     new requests fail with BV_EBUSY (retryable) instead of growing
 *     without bound. Without this method sent frames count as written.
 *
 * Reports, through the functions this library installs as
 * Module.bvwReport (they copy into the wasm heap and call the exported C
 * functions bvw_ws_on_open, bvw_ws_rx_buf, bvw_ws_on_message and
 * bvw_ws_on_close of conn_web.c):
 *
 *   Module.bvwReport.opened(handle)          ws "open"
 *   Module.bvwReport.message(handle, data)   ws "message": event.data as
 *       is. A string is one text frame; anything else (ArrayBuffer, Blob)
 *       is a binary frame and is dropped, as the native library does.
 *   Module.bvwReport.closed(handle, code)    ws "close": event.code. Also
 *       when the socket failed to connect ("error" is followed by "close";
 *       report only the close).
 *
 * Reports for a handle the library no longer uses (an earlier attempt, or
 * after shutdown) are ignored, so the transport need not track that. The
 * library bounds connecting and closing itself (connect_timeout_s, 10 s):
 * after that it calls close() and treats the handle as gone.
 */

mergeInto(LibraryManager.library, {
  $BVW: {
    next: 1,
    decoder: null,
    encoder: null,

    transport: function() {
      var t = Module['bvwTransport'];
      if (!t) throw new Error('Module.bvwTransport is not set');
      return t;
    },

    opened: function(handle) {
      _bvw_ws_on_open(handle | 0);
    },

    message: function(handle, data) {
      var bytes, p;

      handle = handle | 0;
      if (typeof data != 'string') {
        _bvw_ws_on_message(handle, 0, 0);
        return;
      }
      if (!BVW.encoder) BVW.encoder = new TextEncoder();
      bytes = BVW.encoder.encode(data);
      // The C side refuses (0) anything over its frame cap before it
      // takes heap memory for it.
      p = _bvw_ws_rx_buf(handle, bytes.length);
      if (!p) {
        _bvw_ws_on_message(handle, 0, bytes.length);
        return;
      }
      // After the call: the heap may have grown (a new HEAPU8).
      HEAPU8.set(bytes, p);
      _bvw_ws_on_message(handle, p, bytes.length);
    },

    closed: function(handle, code) {
      _bvw_ws_on_close(handle | 0, code | 0);
    },
  },
  $BVW__postset: 'Module["bvwReport"] = {"opened": BVW.opened, ' +
    '"message": BVW.message, "closed": BVW.closed};',

  bvw_ws_open__deps: ['$BVW'],
  bvw_ws_open: function(host, port, path) {
    var h = BVW.next, url, secure;

    BVW.next = BVW.next >= 0x7fffffff ? 1 : BVW.next + 1;
    host = UTF8ToString(host);
    if (host.indexOf(':') >= 0 && host.charAt(0) != '[')
      host = '[' + host + ']';
    secure = typeof location != 'undefined' && location.protocol == 'https:';
    url = (secure ? 'wss://' : 'ws://') + host + ':' + port +
      UTF8ToString(path);
    try {
      BVW.transport()['open'](h, url);
    } catch (e) {
      err('bvchat: bvwTransport.open(' + url + '): ' + e);
      return 0;
    }
    return h;
  },

  bvw_ws_send__deps: ['$BVW'],
  bvw_ws_send: function(handle, buf, len) {
    var text;

    if (!BVW.decoder) BVW.decoder = new TextDecoder('utf-8');
    // slice(): TextDecoder refuses views of a shared heap (threads).
    text = BVW.decoder.decode(HEAPU8.slice(buf, buf + len));
    try {
      BVW.transport()['send'](handle, text);
    } catch (e) {
      err('bvchat: bvwTransport.send: ' + e);
      return -1;
    }
    return 0;
  },

  bvw_ws_close__deps: ['$BVW'],
  bvw_ws_close: function(handle, code) {
    if (code != 1000 && (code < 3000 || code > 4999)) code = 1000;
    try {
      BVW.transport()['close'](handle, code);
    } catch (e) {
      err('bvchat: bvwTransport.close: ' + e);
    }
  },

  bvw_ws_buffered__deps: ['$BVW'],
  bvw_ws_buffered: function(handle) {
    var t, n;

    try {
      t = BVW.transport();
      if (typeof t['buffered'] != 'function') return 0;
      n = +t['buffered'](handle);
    } catch (e) {
      err('bvchat: bvwTransport.buffered: ' + e);
      return 0;
    }
    if (!(n > 0)) return 0;
    return n > 0x7fffffff ? 0x7fffffff : Math.floor(n);
  },
});
