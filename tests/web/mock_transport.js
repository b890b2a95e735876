// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * mock_transport.js (--pre-js of test_conn_web): a Module.bvwTransport
 * that keeps no socket. It records every call in Module.mockLog as
 * "open H URL", "send H TEXT", "close H CODE", and fails on demand
 * (Module.mockFail.open / .send). buffered() returns Module.mockBuffered.
 * The test drives the reports itself through Module.bvwReport.
 */
var Module = typeof Module != 'undefined' ? Module : {};

Module['mockLog'] = [];
Module['mockFail'] = {};
Module['mockBuffered'] = 0;
Module['bvwTransport'] = {
  'open': function(handle, url) {
    if (Module['mockFail']['open']) throw new Error('refused by the test');
    Module['mockLog'].push('open ' + handle + ' ' + url);
  },
  'send': function(handle, text) {
    if (typeof text != 'string') throw new Error('send: not a string');
    if (Module['mockFail']['send']) throw new Error('refused by the test');
    Module['mockLog'].push('send ' + handle + ' ' + text);
  },
  'close': function(handle, code) {
    Module['mockLog'].push('close ' + handle + ' ' + code);
  },
  'buffered': function(handle) {
    return Module['mockBuffered'];
  },
};
