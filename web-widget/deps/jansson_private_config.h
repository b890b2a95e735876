/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * jansson_private_config.h: what jansson 2.14's CMake checks would find
 * under emscripten, for the WebAssembly build (web-widget/CMakeLists.txt).
 *
 * No USE_URANDOM: reading /dev/urandom would pull emscripten's whole file
 * system into the app. The hash seed then comes from the time; the app
 * should call json_object_seed() with random bytes before its first JSON.
 */
#ifndef BV_JANSSON_PRIVATE_CONFIG_H
#define BV_JANSSON_PRIVATE_CONFIG_H

#define HAVE_STDINT_H	     1
#define HAVE_SYS_TYPES_H     1
#define HAVE_SYS_TIME_H	     1
#define HAVE_GETTIMEOFDAY    1
#define HAVE_ATOMIC_BUILTINS 1
#define HAVE_INT32_T	     1
#define HAVE_UINT32_T	     1
#define HAVE_UINT16_T	     1
#define HAVE_UINT8_T	     1
#define HAVE_SSIZE_T	     1

#define INITIAL_HASHTABLE_ORDER 3

#endif
