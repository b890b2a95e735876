/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bv_error.h: the one error table of bvchat.
 *
 * BV_ERR_MAP(XX) generates the enum, bv_strerror() and bv_errname(). Codes
 * are negative, explicit and never reused; the wire carries the name
 * ("BV_EDEVICES") and the number. docs/protocol.md lists every wire code.
 * Retryable codes are marked so clients know to try the same request again.
 * -1 … -5 are internal to the programs, -50 and below are libbvchat's own
 * (end-to-end events the relay cannot see); neither is ever sent.
 */
#ifndef BV_ERROR_H
#define BV_ERROR_H

/* XX(name, number, retryable, message) */
#define BV_ERR_MAP(XX)                                                         \
	XX(ENOMEM, -1, 0, "out of memory")                                     \
	XX(EINVAL, -2, 0, "invalid argument")                                  \
	XX(EINTERNAL, -3, 0, "internal error")                                 \
	XX(EIO, -4, 0, "input/output error")                                   \
	XX(ECONFIG, -5, 0, "invalid configuration")                            \
	XX(EJSON, -10, 0, "frame is not a JSON object")                        \
	XX(EFIELD, -11, 0, "field missing, of the wrong type or out of range") \
	XX(EOP, -12, 0, "unknown operation")                                   \
	XX(EFRAME, -13, 0, "frame larger than max_frame_bytes")                \
	XX(EBASE64, -14, 0, "invalid base64")                                  \
	XX(EENVELOPE, -15, 0, "envelope body larger than max_envelope_bytes")  \
	XX(ETOOMANY, -16, 0, "too many items in one request")                  \
	XX(ENOAUTH, -20, 0, "authenticate first")                              \
	XX(EAUTH, -21, 0, "authentication failed")                             \
	XX(EALREADY, -22, 0, "connection is already authenticated")            \
	XX(ETOKEN, -23, 0, "enrollment token is not valid")                    \
	XX(ETOKEN_EXPIRED, -24, 0, "enrollment token has expired")             \
	XX(ETOKEN_USED, -25, 0, "enrollment token has already been used")      \
	XX(EDEVICE_LIMIT, -26, 0, "account has too many devices")              \
	XX(ECONN_LIMIT, -27, 1, "account has too many connections")            \
	XX(EINVITE, -28, 0, "invite code is not valid")                        \
	XX(EORIGIN, -29, 0, "request from a web page of another origin")       \
	XX(ENOACCOUNT, -30, 0, "no such account reachable from this device")   \
	XX(EDEVICES, -31, 0, "envelopes do not match the recipient devices")   \
	XX(ESTALE, -32, 0, "recipient devices have a new registration id")     \
	XX(EQUEUE_FULL, -33, 1, "a recipient device's queue is full")          \
	XX(ERATE, -34, 1, "rate limit exceeded")                               \
	XX(ENOKEYS, -35, 0, "device has no signed prekey")                     \
	XX(EPREKEY_LIMIT, -36, 0, "one-time prekey stock would exceed limit")  \
	XX(EBLOB_SIZE, -37, 0, "attachment larger than the relay takes")       \
	XX(EQUOTA, -38, 0, "the municipality's attachment storage is full")    \
	XX(EBLOB, -39, 0, "upload does not match what was announced")          \
	XX(EUNAVAILABLE, -40, 1, "database unavailable")                       \
	XX(ESHUTDOWN, -41, 1, "relay is shutting down")                        \
	XX(EBUSY, -42, 1, "too many requests in flight")                       \
	XX(ENOBLOB, -43, 0, "no such attachment, or not yours to fetch")       \
	XX(EUNTRUSTED, -50, 0,                                                 \
	   "a recipient's identity key changed and is not accepted yet")       \
	XX(EUNDECRYPTABLE, -51, 0,                                             \
	   "message could not be decrypted; a resend was asked for")

enum bv_error {
	BV_OK = 0,
#define BV_ERR_ENUM(name, num, retry, msg) BV_##name = (num),
	BV_ERR_MAP(BV_ERR_ENUM)
#undef BV_ERR_ENUM
};

/* Returns a static English sentence for code; "unknown error" if none. */
const char *bv_strerror(int code);

/* Returns the static name ("BV_EDEVICES") for code; "BV_EUNKNOWN" if none. */
const char *bv_errname(int code);

/* Returns 1 when a request that failed with code may be retried as is. */
int bv_err_retryable(int code);

/* Returns the code whose name is name, or 0 when there is none. */
int bv_err_from_name(const char *name);

#endif
