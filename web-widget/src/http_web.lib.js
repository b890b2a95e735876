// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * http_web.lib.js: the emscripten --js-library half of libbvchat's browser
 * HTTP transport (client-lib/src/http_web.c), for the attachments' blobs
 * (docs/protocol.md "Attachments"). Link with
 *   emcc ... --js-library web-widget/src/http_web.lib.js
 * Unlike the WebSocket (conn_web.lib.js) it needs nothing from the page:
 * it calls fetch() itself (Module.bvwFetch instead, when the page sets
 * one; the tests under node do not need to). Everything runs on the
 * page's one thread.
 *
 * THE CONTRACT WITH http_web.c
 *
 *   bvw_http_start(method, url, bearer, body, body_len, max_answer,
 *                  timeout_ms) -> handle (> 0), or 0 (nothing started)
 *     fetch(url) with "Authorization: Bearer <bearer>", no cookies, no
 *     cache, no redirects, no referrer. A PUT sends body[0..body_len) as
 *     a Uint8Array: the browser sets Content-Length to exactly that (never
 *     chunked). The bytes are copied before this returns (fetch() takes
 *     its body synchronously), so C frees its buffer at once.
 *   bvw_http_abort(handle)
 *     AbortController.abort(); the report still comes (BV_EIO).
 *
 * Exactly one report per started handle, always from a promise (never
 * inside bvw_http_start): _bvw_http_done(handle, end, status, body, len)
 * with end 0 and the whole answer (copied into a buffer from
 * _bvw_http_alloc, which C then owns), 1: no answer (refused, reset,
 * timed out after timeout_ms, aborted), 2: the answer is longer than
 * max_answer (cut off by Content-Length before any of it is read, else
 * while reading), 3: no memory for it. C turns these into BV_E* codes. Nothing is logged: the URL
 * names a blob and the header carries a capability.
 */

mergeInto(LibraryManager.library, {
  $BVWH: {
    next: 1,
    live: {}, // handle -> AbortController

    // Reads res's body into one Uint8Array, or null when longer than max.
    read: async function(res, max) {
      var n = res.headers.get('content-length'), r, parts = [], len = 0,
        out, off = 0, x, i;

      if (n !== null && +n > max) return null;
      if (!res.body) {
        out = new Uint8Array(await res.arrayBuffer());
        return out.length > max ? null : out;
      }
      r = res.body.getReader();
      for (;;) {
        x = await r.read();
        if (x.done) break;
        len += x.value.length;
        if (len > max) {
          r.cancel().catch(function() {});
          return null;
        }
        parts.push(x.value);
      }
      out = new Uint8Array(len);
      for (i = 0; i < parts.length; i++) {
        out.set(parts[i], off);
        off += parts[i].length;
      }
      return out;
    },

    report: function(h, end, status, bytes) {
      var p = 0, n = 0;

      delete BVWH.live[h];
      runtimeKeepalivePop();
      if (end == 0 && bytes) {
        n = bytes.length;
        p = _bvw_http_alloc(n);
        if (!p) {
          end = 3;
          n = 0;
        } else {
          // After the call: the heap may have grown (a new HEAPU8).
          HEAPU8.set(bytes, p);
          bytes.fill(0);
        }
      }
      callUserCallback(function() {
        _bvw_http_done(h, end, status, p, n);
      });
    },
  },
  $BVWH__deps: ['$runtimeKeepalivePush', '$runtimeKeepalivePop',
    '$callUserCallback'],

  bvw_http_start__deps: ['$BVWH'],
  bvw_http_start: function(method, url, bearer, body, bodyLen, max,
                           timeoutMs) {
    var h = BVWH.next, ctl, init, f, timer, timedOut = false, p;

    BVWH.next = BVWH.next >= 0x7fffffff ? 1 : BVWH.next + 1;
    method = UTF8ToString(method);
    try {
      f = Module['bvwFetch'] || fetch;
      ctl = new AbortController();
      init = {
        method: method,
        headers: { 'Authorization': 'Bearer ' + UTF8ToString(bearer) },
        credentials: 'omit',
        cache: 'no-store',
        redirect: 'error',
        referrerPolicy: 'no-referrer',
        signal: ctl.signal,
      };
      if (method == 'PUT') {
        init.headers['Content-Type'] = 'application/octet-stream';
        init.body = HEAPU8.subarray(body, body + bodyLen);
      }
      p = f(UTF8ToString(url), init);
    } catch (e) {
      return 0;
    }
    BVWH.live[h] = ctl;
    // A request in flight keeps the runtime alive, as a timer does.
    runtimeKeepalivePush();
    timer = setTimeout(function() {
      timedOut = true;
      ctl.abort();
    }, timeoutMs);
    p.then(function(res) {
      return BVWH.read(res, max).then(function(bytes) {
        clearTimeout(timer);
        if (bytes === null) BVWH.report(h, 2, 0, null);
        else BVWH.report(h, 0, res.status, bytes);
      });
    }).catch(function() {
      clearTimeout(timer);
      BVWH.report(h, 1, 0, null);
    });
    return h;
  },

  bvw_http_abort__deps: ['$BVWH'],
  bvw_http_abort: function(handle) {
    var ctl = BVWH.live[handle];

    if (ctl) ctl.abort();
  },
});
