/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fiks_error.h: error codes of the FIKS IO library (libbvfiks) and of the
 * programs built on it (bvchat-archiver, the development server, the test
 * archive peer). They extend common/bv_error.h's BV_E* codes, which the
 * library also returns (BV_ENOMEM, BV_EINVAL, BV_EIO, BV_ECONFIG), in their
 * own range -100 … -149 so the two tables never collide. docs/fiks.md lists
 * every code; tests/unit/fiks/test_error.c keeps that list and this table
 * in step.
 */
#ifndef FIKS_ERROR_H
#define FIKS_ERROR_H

/* XX(name, number, retryable, message) */
#define FIKS_ERR_MAP(XX)                                                       \
	XX(EZIP, -100, 0, "ASiC-E package is not a valid zip or lacks a part") \
	XX(EMANIFEST, -101, 0, "ASiC-E manifest is missing or malformed")      \
	XX(EDIGEST, -102, 0,                                                   \
	   "a file does not match its ASiC-E manifest digest")                 \
	XX(ESIGNATURE, -103, 0, "ASiC-E signature does not verify")            \
	XX(ECMS, -104, 0, "CMS envelope cannot be decrypted with our key")     \
	XX(ELIMIT, -105, 0, "FIKS package exceeds a size or count limit")      \
	XX(EKEY, -106, 0, "key or certificate cannot be loaded or used")       \
	XX(EHTTP, -110, 1, "FIKS IO HTTP request failed")                      \
	XX(EREFUSED, -111, 0, "FIKS IO refused the request")                   \
	XX(EUNAUTHORIZED, -112, 0, "FIKS IO refused our credentials")          \
	XX(ENOTFOUND, -113, 0, "FIKS IO account or document not found")        \
	XX(EAMQP, -114, 1, "FIKS IO AMQP connection failed")                   \
	XX(EHEADER, -115, 0, "FIKS IO message lacks a required header")        \
	XX(ETIMEOUT, -116, 1, "no FIKS IO message arrived in time")            \
	XX(ETLS, -117, 0,                                                      \
	   "FIKS IO's AMQP server certificate is not trusted for its name")    \
	XX(EXML, -120, 0, "XML is not well-formed or not what was expected")   \
	XX(ESCHEMA, -121, 0,                                                   \
	   "XML does not validate against its Fiks Arkiv v1 schema")

enum fiks_error {
#define FIKS_ERR_ENUM(name, num, retry, msg) FIKS_##name = (num),
	FIKS_ERR_MAP(FIKS_ERR_ENUM)
#undef FIKS_ERR_ENUM
};

/* A static English sentence for a FIKS_E* or BV_E* code. */
const char *fiks_strerror(int code);

/* The static name ("FIKS_EDIGEST", "BV_ENOMEM") of a code. */
const char *fiks_errname(int code);

/* 1 when trying again later may succeed (FIKS_EHTTP, FIKS_EAMQP, …). */
int fiks_retryable(int code);

#endif /* FIKS_ERROR_H */
