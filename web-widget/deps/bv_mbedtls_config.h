/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bv_mbedtls_config.h: the mbedtls 2.28 configuration of the WebAssembly
 * build (MBEDTLS_CONFIG_FILE), which compiles only library/aes.c and
 * platform_util.c: AES with CBC and CTR for crypto_web.c, nothing else.
 *
 * FEWER_TABLES: one 1 KB table per direction, computed on first use
 * instead of four; the wasm is smaller, AES a little slower.
 */
#ifndef BV_MBEDTLS_CONFIG_H
#define BV_MBEDTLS_CONFIG_H

#define MBEDTLS_AES_C
#define MBEDTLS_CIPHER_MODE_CBC
#define MBEDTLS_CIPHER_MODE_CTR
#define MBEDTLS_AES_FEWER_TABLES

#include "mbedtls/check_config.h"

#endif
