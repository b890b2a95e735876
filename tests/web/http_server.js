// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * http_server.js (--pre-js of test_http_web): a real HTTP server on
 * 127.0.0.1 in the same node process, started before main() runs
 * (Module.testPort). It answers the test's paths:
 *   PUT  /v1/blobs/echo   201 {"len","sha256","auth","cl","te","ct"} of
 *                         what came (the body is kept for /data)
 *   GET  /v1/blobs/data   200, the last PUT's body with Content-Length
 *   GET  /v1/blobs/chunk  200, 10 × 1000 bytes without Content-Length
 *   GET  /v1/blobs/hang   never answers
 *   GET  /v1/blobs/gone   404 {"error":{"code":"BV_ENOBLOB","errno":-43}}
 * Module.testHits counts requests.
 */
var Module = typeof Module != 'undefined' ? Module : {};

Module['testHits'] = 0;
Module['preRun'] = (Module['preRun'] || []).concat([function() {
  var http = require('http'), crypto = require('crypto'), kept = null;
  var srv = http.createServer(function(req, res) {
    var parts = [];

    Module['testHits']++;
    req.on('data', function(d) { parts.push(d); });
    req.on('end', function() {
      var body = Buffer.concat(parts), i;

      if (req.method == 'PUT' && req.url == '/v1/blobs/echo') {
        kept = body;
        res.writeHead(201, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({
          len: body.length,
          sha256: crypto.createHash('sha256').update(body).digest('hex'),
          auth: req.headers['authorization'] || '',
          cl: req.headers['content-length'] || '',
          te: req.headers['transfer-encoding'] || '',
          ct: req.headers['content-type'] || '',
        }));
      } else if (req.url == '/v1/blobs/data') {
        res.writeHead(200, { 'Content-Length': kept ? kept.length : 0 });
        res.end(kept || '');
      } else if (req.url == '/v1/blobs/chunk') {
        res.writeHead(200);
        for (i = 0; i < 10; i++) res.write(Buffer.alloc(1000, 0x61));
        res.end();
      } else if (req.url == '/v1/blobs/hang') {
        // never answered
      } else {
        res.writeHead(404, { 'Content-Type': 'application/json' });
        res.end('{"error":{"code":"BV_ENOBLOB","errno":-43}}');
      }
    });
  });
  addRunDependency('http_server');
  srv.listen(0, '127.0.0.1', function() {
    Module['testPort'] = srv.address().port;
    srv.unref();
    removeRunDependency('http_server');
  });
}]);
