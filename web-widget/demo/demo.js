/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * demo.js: the municipality's page in make run, as a host on another
 * origin than the relay: opened as http://localhost:PORT/widget/demo/ it
 * loads the widget from http://127.0.0.1:PORT/widget/ (a different origin
 * to the browser), just as kommune.no would load it from the relay.
 */
(function () {
	'use strict';
	var relay = location.hostname === 'localhost'
		? location.protocol + '//127.0.0.1:' + location.port
		: location.origin;
	var s = document.createElement('script');
	s.src = relay + '/widget/loader.js';
	s.setAttribute('data-lang', 'nb');
	s.async = true;
	document.body.appendChild(s);
})();
