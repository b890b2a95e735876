/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bvchat.h: the one public header of libbvchat, the bvchat client library:
 * enrollment, connection to a relay, the cases this account is on and their
 * conversations (as the relay lets this account see them), end-to-end
 * encrypted text messages to every device of a case conversation's members
 * and of our own account, notices from the service, receipts and
 * identity-key changes. It does not draw anything or keep contacts: who is
 * in a conversation is the relay's case view (docs/cases.md).
 *
 * Threads: single-threaded. Every call and every callback happens on the
 * thread that runs the client's libuv loop; a client is never shared.
 * Callbacks never run inside the call that caused them; a callback may
 * call any function here except bv_client_close() and bv_client_free().
 *
 * Memory: the library allocates and frees its own objects; every string a
 * callback gets is borrowed for the call; the caller owns what it passes.
 * Linking: pkg-config --cflags --libs bvchat (libbvchat.so exports only
 * the bv_client_* functions below).
 *
 * What the library does by itself, so that no message is silently lost:
 * - the case view is fetched after every connect and whenever the relay
 *   says it changed (a caseworker joined or left), stored, and reported
 *   through bv_cases_cb;
 * - a text is stored before bv_client_send_text() returns and goes to the
 *   conversation's members as the relay requires them at that moment (a
 *   caseworker who joined gets it, one who left does not); one the relay
 *   has not taken yet is sent again after a restart, with its id
 *   (receivers drop copies they already have);
 * - content that claims another conversation than the one its sender
 *   named to the relay is refused (kept as a placeholder, reported);
 * - a received message is stored before the relay is told it arrived;
 * - a message that cannot be decrypted is kept as a placeholder
 *   (BV_EUNDECRYPTABLE), and the sending device is asked, end-to-end
 *   encrypted, to resend it over a new session; a resend request for a
 *   text this device sent is honoured for the accounts it was sent to;
 * - a delivery receipt goes to the sender of every text from another
 *   account (unless no_delivery_receipts), gathered for about 100 ms;
 *   bv_client_mark_read() sends read receipts. Receipts are end-to-end
 *   encrypted and go to the case file (the archive) and our own other
 *   devices too (read on one, read on all). A receipt not yet sent when
 *   the app stops is not sent.
 */
#ifndef BVCHAT_H
#define BVCHAT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Error codes: negative, never reused; the same numbers as bvchat's one
 * error table (common/bv_error.h, which the library is built with).
 */
#ifndef BV_ERROR_H
enum bv_error {
	BV_OK = 0,
	BV_ENOMEM = -1,
	BV_EINVAL = -2,
	BV_EINTERNAL = -3,
	BV_EIO = -4,
	BV_ECONFIG = -5,
	BV_EJSON = -10,
	BV_EFIELD = -11,
	BV_EOP = -12,
	BV_EFRAME = -13,
	BV_EBASE64 = -14,
	BV_EENVELOPE = -15,
	BV_ETOOMANY = -16,
	BV_ENOAUTH = -20,
	BV_EAUTH = -21,
	BV_EALREADY = -22,
	BV_ETOKEN = -23,
	BV_ETOKEN_EXPIRED = -24,
	BV_ETOKEN_USED = -25,
	BV_EDEVICE_LIMIT = -26,
	BV_ECONN_LIMIT = -27,
	BV_EINVITE = -28,
	BV_EORIGIN = -29,
	BV_ENOACCOUNT = -30,
	BV_EDEVICES = -31,
	BV_ESTALE = -32,
	BV_EQUEUE_FULL = -33,
	BV_ERATE = -34,
	BV_ENOKEYS = -35,
	BV_EPREKEY_LIMIT = -36,
	BV_EBLOB_SIZE = -37,
	BV_EQUOTA = -38,
	BV_EBLOB = -39,
	BV_EUNAVAILABLE = -40,
	BV_ESHUTDOWN = -41,
	BV_EBUSY = -42,
	BV_ENOBLOB = -43,
	BV_EUNTRUSTED = -50,
	BV_EUNDECRYPTABLE = -51,
	BV_ETAMPERED = -52,
};
#endif

/* Length of a store key, and of ids as strings (without the NUL). */
#define BV_CLIENT_STORE_KEY_LEN	 32
#define BV_CLIENT_ACCOUNT_LEN	 36 /* lower-case UUID */
#define BV_CLIENT_MESSAGE_ID_LEN 36
/* Text bytes in one message (UTF-8, no NUL). */
#define BV_CLIENT_TEXT_MAX 8192
/* Bytes of an e-post's subject (UTF-8, no control characters). */
#define BV_CLIENT_SUBJECT_MAX 200
/* Working days a citizen's e-post is answered in when the case view does
 * not say (the relay's default). */
#define BV_CLIENT_ANSWER_DAYS 5
/* Sends of one message before it is given up (BV_EDEVICES, BV_ESTALE,
 * retryable relay errors). */
#define BV_CLIENT_SEND_ATTEMPTS 4

struct bv_client;
struct uv_loop_s; /* libuv's uv_loop_t */

/* What the status callback reports. */
enum bv_client_status {
	/* Authenticated with the relay; code 0. */
	BV_CLIENT_ONLINE = 1,
	/* Enrollment done and prekeys uploaded: peers can now message us. */
	BV_CLIENT_ENROLLED,
	/* Everything queued while we were away has been received. */
	BV_CLIENT_CAUGHT_UP,
	/* Connection lost; the library reconnects by itself. code: the
	 * relay's close code or -1. */
	BV_CLIENT_OFFLINE,
	/* Another install of this device took over; no reconnect until
	 * bv_client_connect(). */
	BV_CLIENT_DISPLACED,
	/* The relay refused our credentials or token for good; code is the
	 * BV_E* code. */
	BV_CLIENT_REFUSED,
};

enum bv_client_receipt {
	BV_CLIENT_RECEIPT_DELIVERED = 1,
	BV_CLIENT_RECEIPT_READ = 2,
	/* The case file has the messages: sent by the conversation's archive
	 * (the municipality's archive device) and believed from it only; the
	 * reference is in the history (bv_client_message.journal). */
	BV_CLIENT_RECEIPT_JOURNALED = 3,
};

/* Role names of the case view (docs/cases.md); a later relay may add more. */
#define BV_CLIENT_ROLE_ARCHIVE "archive" /* the case file, not a person */

/* One person (or the case file) as this account may see them. */
struct bv_client_person {
	const char *account;
	/* "child", "parent", "foster_parent", "guardian", "supervisor",
	 * "support_contact" (citizens), "caseworker", "team_lead",
	 * "service_leader" (staff), or "archive". */
	const char *role;
	const char *name; /* the roster's display name; NULL for the archive */
};

/* One conversation of a case. */
struct bv_client_case_conversation {
	const char *conversation;
	const char *kind; /* "team" or "citizens" */
	int closed;	  /* 1: takes no new sends; its history stays */
	int64_t created_ms;
	/* Who a send reaches now: its citizens, the case team, the archive;
	 * never anyone protected from this account. */
	const struct bv_client_person *members;
	size_t n_members;
};

/* One case this account is on; every pointer borrowed for the call. */
struct bv_client_case {
	const char *case_id;
	const char *case_number; /* e.g. "2026/0417" */
	const char *municipality;
	const char *role; /* this account's role on the case */
	/* Working days (Mon–Fri) the municipality answers an e-post in
	 * (1 … 60); 0 when the relay did not say. bv_client_send_email()
	 * sets a citizen's answer_by from it. */
	int answer_days;
	/* Staff and the archive see the whole roster; a citizen sees
	 * themselves, the case team and the archive. */
	const struct bv_client_person *people;
	size_t n_people;
	/* A citizen's own conversations; for staff every one of the case. */
	const struct bv_client_case_conversation *conversations;
	size_t n_conversations;
};

/* A notice from the service (not a person, not end-to-end encrypted: it
 * holds nothing secret); pointers borrowed for the call. */
struct bv_client_notice {
	const char *conversation;
	const char *message_id;
	/* "out_of_hours": the office is closed (show phone and
	 * emergency_phone). Show a kind you do not know as "a message from
	 * the service". */
	const char *kind;
	int64_t time_ms;	     /* the relay's */
	const char *municipality;    /* "" when not given */
	const char *phone;	     /* barnevernvakt; NULL when none is set */
	const char *emergency_phone; /* Alarmtelefonen, "116 111"; or "" */
};

/* Connection state changed; see enum bv_client_status. */
typedef void (*bv_status_cb)(struct bv_client *c, void *user,
			     enum bv_client_status status, int code);

/*
 * A text message arrived (from a peer, or a copy of one we sent from our
 * other device). It is already stored durably; the relay is told after this
 * returns. Every string is borrowed for the call; text is NUL-terminated,
 * text_len bytes. time_ms: the relay's timestamp, ms since the epoch.
 */
typedef void (*bv_message_cb)(struct bv_client *c, void *user,
			      const char *conversation, const char *sender,
			      uint32_t sender_device, const char *message_id,
			      int64_t time_ms, const char *text,
			      size_t text_len);

struct bv_client_message;

/*
 * As bv_message_cb, with the whole message as the history shows it
 * (bv_client_message: an e-post's subject, thread and answer_by too);
 * borrowed for the call, seq 0. When set, it is called instead of
 * bv_message_cb.
 */
typedef void (*bv_message_ex_cb)(struct bv_client *c, void *user,
				 const struct bv_client_message *m);

/*
 * A delivery or read receipt for n message ids (borrowed for the call)
 * from a peer device; sender is our own account when we read a message on
 * another of our devices (type READ only). The state of the messages in
 * the local history has already been moved forward.
 */
typedef void (*bv_receipt_cb)(struct bv_client *c, void *user,
			      const char *conversation, const char *sender,
			      uint32_t sender_device,
			      enum bv_client_receipt type,
			      const char *const *message_ids, size_t n);

/*
 * The identity key of (account, device) is not the one we trusted. Nothing
 * is sent to or accepted from that device until the user decides and the
 * app calls bv_client_accept_identity(): messages to it are held (the
 * error callback says BV_EUNTRUSTED once per message), messages from it
 * are kept as placeholders and asked for again after acceptance.
 */
typedef void (*bv_key_changed_cb)(struct bv_client *c, void *user,
				  const char *account, uint32_t device);

/*
 * Something failed that no call can report: code is a BV_E* code,
 * message_id the message concerned or NULL, what an English sentence for
 * logs (no plaintext, no keys). All borrowed for the call.
 */
typedef void (*bv_error_cb)(struct bv_client *c, void *user, int code,
			    const char *message_id, const char *what);

/*
 * The end of a bv_client_send_text(): rc 0 once the relay stored the
 * message for every device, else the BV_E* code it was given up with
 * (after bv_error_cb). Also for messages sent again after a restart.
 */
typedef void (*bv_sent_cb)(struct bv_client *c, void *user,
			   const char *message_id, int rc);

/*
 * A notice from the service arrived in a conversation. It is already
 * stored in the history (sender "", see bv_client_message.notice);
 * duplicates are dropped.
 */
typedef void (*bv_notice_cb)(struct bv_client *c, void *user,
			     const struct bv_client_notice *n);

/*
 * A refresh of the case view ended: rc 0 and the stored view is the
 * relay's now (changed 1 when it differs from before: read it with
 * bv_client_cases()), or the BV_E* code it failed with (the stored view is
 * kept; it is fetched again on the next connect).
 */
typedef void (*bv_cases_cb)(struct bv_client *c, void *user, int changed,
			    int rc);

/*
 * The end of a bv_client_conversation_create(): rc 0 and the
 * conversation's id (borrowed for the call), or the BV_E* code and NULL
 * (BV_ENOACCOUNT: not allowed, whatever the reason).
 */
typedef void (*bv_conversation_created_cb)(struct bv_client *c, void *arg,
					   const char *conversation, int rc);

/*
 * The end of a bv_client_accept_identity(): rc 0 when the new key of
 * (account, device) is trusted and a session built (held messages go on),
 * else the BV_E* code (the key is not trusted).
 */
typedef void (*bv_accepted_cb)(struct bv_client *c, void *user,
			       const char *account, uint32_t device, int rc);

struct bv_client_opts {
	const char *store_path; /* the local store (created, mode 0600) */
	/* BV_CLIENT_STORE_KEY_LEN bytes sealing the store; copied. */
	const uint8_t *store_key;
	const char *relay_host; /* e.g. "127.0.0.1" */
	int relay_port;
	/* NULL: the client owns a loop, run it with bv_client_run_once();
	 * else borrowed: the caller runs it and it must outlive the client. */
	struct uv_loop_s *loop;
	/* Callbacks (each may be NULL) and the pointer passed to them. */
	bv_status_cb on_status;
	bv_message_cb on_message;
	bv_receipt_cb on_receipt;
	bv_key_changed_cb on_key_changed;
	bv_error_cb on_error;
	bv_sent_cb on_sent;
	bv_accepted_cb on_identity_accepted;
	bv_notice_cb on_notice;
	bv_cases_cb on_cases;
	void *user;
	/* 1: send no delivery receipts (a device no person reads, such as
	 * the municipality's archive). Read receipts are the app's call. */
	int no_delivery_receipts;
	/* The signed prekey is replaced (and the one before kept) when older
	 * than this; 0: 7 days. */
	int64_t signed_prekey_max_age_ms;
	/* Instead of on_message when set (e-posts: subject, thread). */
	bv_message_ex_cb on_message_ex;
	/* Where attachments are uploaded to and fetched from: NULL for
	 * "http://relay_host:relay_port" (the relay serves them on its
	 * WebSocket port), or e.g. "https://relay.example" behind TLS. */
	const char *http_base;
};

/*
 * Creates a client: opens the store and prepares the connection; nothing
 * goes over the network until bv_client_enroll() or bv_client_connect().
 * opts and everything it points to is copied (except loop).
 * Returns 0 and sets *out (free with bv_client_free); BV_EINVAL for a NULL
 * or missing argument or a store key that is not the store's; BV_EIO when
 * the store cannot be opened; BV_ENOMEM; BV_EINTERNAL.
 */
int bv_client_new(const struct bv_client_opts *opts, struct bv_client **out);

/*
 * Frees c (NULL is fine). With the client's own loop it closes the client
 * first. With a borrowed loop call bv_client_close(), run the loop until
 * uv_run() returns, then bv_client_free(). Never from a callback.
 */
void bv_client_free(struct bv_client *c);

/*
 * Stops the connection and pending sends (their bv_sent_cb is not called)
 * and closes the client's handles. No callbacks after it returns. Never
 * from a callback.
 */
void bv_client_close(struct bv_client *c);

/*
 * First start of this device: generates its identity and auth key,
 * enrolls with token (from the municipality; new account, or another
 * device of an existing one) and uploads a signed prekey and one-time
 * prekeys. Completion: BV_CLIENT_ENROLLED, or BV_CLIENT_REFUSED.
 * Returns 0 when started; BV_EINVAL for a NULL or empty token;
 * BV_EALREADY when this store is already enrolled or enrollment is under
 * way; BV_EIO, BV_ENOMEM, BV_EINTERNAL.
 */
int bv_client_enroll(struct bv_client *c, const char *token);

/*
 * As bv_client_enroll(), but for a reinstall: this (new, empty) store takes
 * over device (1 … 2147483647) of the existing account the token is for,
 * with a new identity key, registration id and auth key (the old
 * install's credentials stop working). The relay drops the device's old
 * prekeys and queue. Peers that still hold the old registration id get
 * BV_ESTALE, fetch the new keys and get a "key changed" event for
 * (account, device); their message is held (BV_EUNTRUSTED) and nothing
 * goes to the new install until they call bv_client_accept_identity().
 * Returns as bv_client_enroll(), and BV_EINVAL for device 0 or over
 * 2147483647. What the relay refuses ends in BV_CLIENT_REFUSED.
 */
int bv_client_enroll_replacing(struct bv_client *c, const char *token,
			       uint32_t device);

/*
 * Connects with the credentials kept in the store (a later start, or after
 * BV_CLIENT_DISPLACED). Reconnects by itself after that.
 * Returns 0; BV_EINVAL when the store is not enrolled; BV_EALREADY when
 * connected or connecting; BV_EIO, BV_ENOMEM.
 */
int bv_client_connect(struct bv_client *c);

/* Our account uuid and device id once enrolled, else "" and 0. Borrowed,
 * valid until bv_client_free(). */
const char *bv_client_account(const struct bv_client *c);
uint32_t bv_client_device(const struct bv_client *c);

/*
 * Sends text (text_len is strlen) to the case conversation (a uuid of the
 * case view): to every device of its members as the relay requires them
 * when it goes out (its citizens, the case team now, the case file) and to
 * our own other devices. Recipients come from the stored case view and are
 * corrected by the relay's answers: a member the view does not know yet
 * (a caseworker who just joined) is added, one who left is dropped, and
 * the view is fetched again. Missing or changed devices are fetched and
 * sessions rebuilt as the relay reports them (BV_EDEVICES, BV_ESTALE), at
 * most BV_CLIENT_SEND_ATTEMPTS sends; while a recipient device's key change
 * waits for the user the message is held, without using attempts. Messages
 * go out in the order they were sent. Writes the new message id and a NUL
 * into message_id_out. The outcome comes through bv_sent_cb: BV_ENOACCOUNT
 * when the conversation is unknown, closed or not ours to write to (also
 * after our account left the case).
 * Returns 0 when the message is stored locally and on its way; BV_EINVAL
 * for bad arguments (conversation not a uuid, empty text, text over
 * BV_CLIENT_TEXT_MAX or not UTF-8); BV_ENOAUTH before enrollment; BV_EIO;
 * BV_ENOMEM. On an error no callback follows.
 */
int bv_client_send_text(struct bv_client *c, const char *conversation,
			const char *text,
			char message_id_out[BV_CLIENT_MESSAGE_ID_LEN + 1]);

/*
 * Sends a secure e-post to the case conversation: for requests, input and
 * complaints that need no instant answer. Delivered, stored, resent and
 * reported (bv_sent_cb) exactly as bv_client_send_text(). subject: 1 …
 * BV_CLIENT_SUBJECT_MAX bytes of UTF-8 without control characters; text:
 * the body, 1 … BV_CLIENT_TEXT_MAX bytes. thread: NULL or "" starts a new
 * thread (its id is this message's id), else the message id of the
 * thread's first e-post (a reply). answer_by_ms: when the service will have
 * answered, ms since the epoch; 0: the library decides — for a citizen
 * (not staff on the conversation's case) the case view's answer_days
 * working days (Monday–Friday) from now (BV_CLIENT_ANSWER_DAYS when the
 * view does not say), for staff none; -1: none.
 * Returns 0 when stored locally and on its way (message id written as by
 * bv_client_send_text()); BV_EINVAL for bad arguments (also a subject or
 * thread that breaks its rule, answer_by_ms below -1); BV_ENOAUTH before
 * enrollment; BV_EIO; BV_ENOMEM. On an error no callback follows.
 */
int bv_client_send_email(struct bv_client *c, const char *conversation,
			 const char *subject, const char *text,
			 const char *thread, int64_t answer_by_ms,
			 char message_id_out[BV_CLIENT_MESSAGE_ID_LEN + 1]);

/* Files on one message, and the largest file the library encrypts (the
 * relay's own cap, max_blob_bytes, is usually lower: 25 MiB). */
#define BV_CLIENT_ATTACHMENTS_MAX 10
#define BV_CLIENT_ATTACHMENT_MAX  (256LL * 1024 * 1024)
/* Bytes of an attachment's file name (UTF-8, no '/', '\\' or controls). */
#define BV_CLIENT_FILE_NAME_MAX 255

/* One file to send: from path, or len bytes at data (path NULL). */
struct bv_client_file {
	const char *path;
	const uint8_t *data;
	size_t len;
	/* "image/jpeg", "image/png", "image/heic", "image/webp",
	 * "application/pdf", "audio/mpeg", "audio/mp4", "audio/ogg",
	 * "audio/webm" or "text/plain". */
	const char *type;
	/* The name the recipients see; NULL: path's last component. */
	const char *name;
};

/*
 * Sends n (1 … BV_CLIENT_ATTACHMENTS_MAX) files with a text (subject
 * NULL; text may be "") or an e-post (subject, thread and answer_by_ms as
 * bv_client_send_email(); text 1 … BV_CLIENT_TEXT_MAX bytes). Each file is
 * encrypted here with a fresh key and its ciphertext kept next to the
 * store (store_path + ".spool/") until the relay has it: announced with
 * blob_create (every file before any is uploaded, so an oversized file or a
 * full quota fails the message before anything is uploaded), uploaded over
 * HTTP (http_base), and then the message with the keys goes out as
 * bv_client_send_text() sends; a restart resumes where it stopped (an
 * upload cut short starts again with a new blob_create). The outcome comes
 * through bv_sent_cb (after bv_error_cb on failure): BV_EBLOB_SIZE (a file
 * larger than the relay takes), BV_EQUOTA (the municipality's attachment
 * storage is full), BV_ENOACCOUNT, BV_EBLOB or BV_ENOBLOB (uploads failed
 * BV_CLIENT_SEND_ATTEMPTS times), BV_EIO (the spool is gone).
 * Returns 0 when stored locally and on its way (message id written as by
 * bv_client_send_text()); BV_EINVAL for bad arguments (a type not on the
 * list, an invalid name, an unreadable path); BV_EBLOB_SIZE for a file over
 * BV_CLIENT_ATTACHMENT_MAX; BV_ENOAUTH before enrollment; BV_EIO;
 * BV_ENOMEM. On an error no callback follows and nothing is kept.
 */
int
bv_client_send_attachments(struct bv_client *c, const char *conversation,
			   const char *text, const char *subject,
			   const char *thread, int64_t answer_by_ms,
			   const struct bv_client_file *files, size_t n,
			   char message_id_out[BV_CLIENT_MESSAGE_ID_LEN + 1]);

/*
 * The end of a bv_client_attachment_fetch(): rc 0 and the file (written
 * to path, or len bytes at data when no path was given; data borrowed for
 * the call and wiped after it), else the BV_E* code and NULLs:
 * BV_ETAMPERED (the ciphertext failed its digest or authentication: cut
 * short, changed, extended; nothing was written), BV_ENOBLOB (the relay
 * has no such blob for this capability: deleted after its retention, or
 * never uploaded), BV_EIO (no answer, or the file could not be written),
 * BV_EUNAVAILABLE (this build has no HTTP).
 */
typedef void (*bv_attachment_fetched_cb)(struct bv_client *c, void *arg,
					 const char *message_id, int index,
					 int rc, const char *path,
					 const uint8_t *data, size_t len);

/*
 * Downloads attachment index (0 …) of message message_id in the local
 * history, checks its SHA-256 and authenticates it while decrypting, and
 * writes it to dest_path (created mode 0600 through a temporary file in
 * the same directory and a rename, so a reader never sees part of it; an
 * existing file is replaced) or hands it to cb in memory (dest_path NULL).
 * A file written is marked downloaded in the history. cb comes once, never
 * inside this call.
 * Returns 0 when started; BV_EINVAL for bad arguments, an unknown message
 * or index, or one of our own files not uploaded yet; BV_EIO; BV_ENOMEM.
 */
int bv_client_attachment_fetch(struct bv_client *c, const char *message_id,
			       int index, const char *dest_path,
			       bv_attachment_fetched_cb cb, void *arg);

/*
 * For the municipality's archive device, once the case file holds the
 * attachments: tells the relay blobs (n, 1 … 100 blob ids of
 * bv_client_attachment.blob) are journaled, so they are deleted after the
 * tenant's retention. The relay ignores it from anyone else. cb (may be
 * NULL) gets 0 or the BV_E* code, never inside this call.
 * Returns 0 when asked; BV_EINVAL; BV_EUNAVAILABLE when not connected;
 * BV_ENOMEM.
 */
typedef void (*bv_blobs_journaled_cb)(struct bv_client *c, void *arg, int rc);
int bv_client_blobs_journaled(struct bv_client *c, const char *const *blobs,
			      size_t n, bv_blobs_journaled_cb cb, void *arg);

/*
 * Sends a read receipt for n (1 … 100) messages of conversation received
 * from sender_account (their message ids as bv_message_cb gave them), to
 * the sender's devices, the case file and our own other devices, and
 * marks them read in the local history. Messages from our own account are only marked.
 * Returns 0 when on its way (failures go to bv_error_cb, no bv_sent_cb);
 * BV_EINVAL for bad arguments (not uuids, n out of range, an invalid or
 * repeated id); BV_ENOAUTH before enrollment; BV_EIO; BV_ENOMEM.
 */
int bv_client_mark_read(struct bv_client *c, const char *conversation,
			const char *sender_account,
			const char *const *message_ids, size_t n);

/*
 * Trusts the new identity key of (account, device) after a "key changed"
 * event, on an explicit user decision only: fetches the device's keys,
 * accepts them and builds a new session; held messages then go out and
 * messages it sent under the new key are asked for again. The outcome
 * comes through bv_accepted_cb.
 * Returns 0 when started; BV_EINVAL; BV_EUNAVAILABLE when offline;
 * BV_ENOMEM.
 */
int bv_client_accept_identity(struct bv_client *c, const char *account,
			      uint32_t device);

/* Digits of a safety number. */
#define BV_CLIENT_SAFETY_NUMBER_LEN 60

/*
 * The safety number of this device and (account, device) under the key
 * this device trusts for it: 60 digits and a NUL into out, the same on
 * both devices. People compare it (in person, on the phone) to know no
 * one sits between them; show it in groups of five. After a key change,
 * accepting the new key and then comparing is the way to verify it.
 * Returns 0; BV_EINVAL for bad arguments or when no key is trusted for
 * that device yet; BV_EIO; BV_ENOMEM; BV_EINTERNAL.
 */
int bv_client_safety_number(struct bv_client *c, const char *account,
			    uint32_t device,
			    char out[BV_CLIENT_SAFETY_NUMBER_LEN + 1]);

/*
 * Runs the client's loop once (UV_RUN_ONCE): waits for at most about
 * 100 ms, then handles what is ready. Returns 0, or BV_EINVAL for NULL.
 * With a borrowed loop the caller may run its loop instead.
 */
int bv_client_run_once(struct bv_client *c);

/* The state of a message in the local history. */
enum bv_client_msg_state {
	BV_CLIENT_MSG_SENDING = 0,	 /* ours, not taken by the relay yet */
	BV_CLIENT_MSG_SENT = 1,		 /* ours, stored by the relay */
	BV_CLIENT_MSG_DELIVERED = 2,	 /* ours, a recipient device has it */
	BV_CLIENT_MSG_READ = 3,		 /* ours read by a recipient; or
					    theirs read by us */
	BV_CLIENT_MSG_FAILED = 4,	 /* ours, given up */
	BV_CLIENT_MSG_UNDECRYPTABLE = 5, /* a placeholder, text "" */
	BV_CLIENT_MSG_RECEIVED = 6,	 /* theirs (or our other device's) */
};

/*
 * For the municipality's archive device: tells every member of
 * conversation that the case file has message_ids (n, 1 … 100) under
 * journal (the archive's reference, 1 … 64 bytes of printable UTF-8). Other
 * devices believe it only from the conversation's archive account. Recorded
 * in the local history at once; sent on the next tick, and kept in memory
 * only: the caller learns from bv_sent_cb, under the id written into
 * message_id_out (when not NULL), whether the relay took it (rc 0) or it
 * was given up, and must ask again after a failure or a restart (a
 * repeated mark changes nothing at the receivers).
 * Returns 0; BV_EINVAL; BV_ENOAUTH before enrollment; BV_EIO; BV_ENOMEM.
 * On an error no callback follows.
 */
int bv_client_mark_journaled(struct bv_client *c, const char *conversation,
			     const char *const *message_ids, size_t n,
			     const char *journal,
			     char message_id_out[BV_CLIENT_MESSAGE_ID_LEN + 1]);

/*
 * Asks the relay for the case view now (it is also fetched after every
 * connect and when the relay says it changed); the end comes through
 * bv_cases_cb. Returns 0; BV_EINVAL; BV_EUNAVAILABLE when not connected.
 */
int bv_client_refresh_cases(struct bv_client *c);

/* Return 0 to go on, anything else to stop (returned by the call). */
typedef int (*bv_client_case_cb)(void *arg, const struct bv_client_case *cs);

/*
 * Calls cb for each case of the stored case view (no network), ordered by
 * case id. Returns 0, cb's nonzero value, BV_EINVAL or BV_ENOMEM.
 */
int bv_client_cases(struct bv_client *c, bv_client_case_cb cb, void *arg);

/*
 * Starts a conversation in case_id: kind "team" (one citizen and the case
 * team: a citizen names only themselves, or nobody; staff name the
 * citizen) or "citizens" (staff only: 2 … 20 citizens of the case, none
 * protected from another). members: n (0 … 20) account uuids. If that
 * citizen already has an open team conversation, its id is given. The
 * outcome comes through cb (once; never inside this call); the case view
 * is then fetched again.
 * Returns 0 when asked; BV_EINVAL for bad arguments; BV_ENOAUTH before
 * enrollment; BV_EUNAVAILABLE when not connected; BV_ENOMEM.
 */
int bv_client_conversation_create(struct bv_client *c, const char *case_id,
				  const char *kind, const char *const *members,
				  size_t n, bv_conversation_created_cb cb,
				  void *arg);

/* Where one attachment of a message is. */
enum bv_client_att_state {
	BV_CLIENT_ATT_UPLOADING = 0, /* ours, not on the relay yet */
	BV_CLIENT_ATT_AVAILABLE = 1, /* on the relay, not fetched here */
	BV_CLIENT_ATT_DOWNLOADED =
		2, /* bv_client_attachment_fetch() wrote it */
};

/* One attachment of a message; pointers borrowed with the message. */
struct bv_client_attachment {
	/* The sender's name for it: UTF-8 without '/', '\\' or control
	 * characters, but still a peer's words: never use it as a path
	 * unchecked (no "..", no leading '.'), escape it for display. */
	const char *name;
	const char *type; /* from the allow list of bv_client_file.type */
	int64_t size;	  /* plaintext bytes */
	enum bv_client_att_state state;
	/* The relay's id for it (for bv_client_blobs_journaled()); "" while
	 * ours is uploading. */
	const char *blob;
};

/*
 * The end of a bv_client_notify_set(): rc 0 when the relay stored the
 * choice, else the BV_E* code (BV_EFIELD: the relay refused a member, e.g.
 * an endpoint it does not take). vapid_public_key: when the relay gave it,
 * its VAPID public key (base64url of the 65-byte uncompressed P-256 point:
 * a browser's PushManager.subscribe() applicationServerKey), else NULL;
 * borrowed for the call.
 */
typedef void (*bv_notify_set_cb)(struct bv_client *c, void *arg,
				 const char *vapid_public_key, int rc);

/*
 * Tells the relay how this person (our account: every device of it) is
 * to be told about messages none of their devices has picked up
 * (docs/protocol.md notify_set; bvchat-notifier sends). Each of channel
 * ("webpush", "sms", "email", "none"), language ("nb", "nn", "en", "se")
 * and endpoint may be NULL: left as it is; at least one is given.
 * endpoint "" removes the stored web push subscription; any other is a
 * browser's PushSubscription: its endpoint (an https:// URL, at most 1024
 * printable ASCII characters), p256dh (base64url of the 65-byte public key)
 * and auth (base64url of the 16-byte secret). Phone numbers and e-mail
 * addresses come from the municipality, never from here.
 * Returns 0 when asked (cb follows once, also with an error when the
 * connection is lost first); BV_EINVAL for bad arguments; BV_ENOAUTH
 * before enrollment; BV_EUNAVAILABLE when not connected; BV_ENOMEM. On an
 * error cb is not called.
 */
int bv_client_notify_set(struct bv_client *c, const char *channel,
			 const char *language, const char *endpoint,
			 const char *p256dh, const char *auth,
			 bv_notify_set_cb cb, void *arg);

/* One message of the history; every pointer borrowed for the call. */
struct bv_client_message {
	int64_t seq; /* local order, ascending; for paging */
	const char *conversation;
	int outgoing; /* 1: sent by this device */
	const char *sender;
	uint32_t sender_device;
	const char *message_id;
	/* Ours: when it was written; theirs: the relay's timestamp. */
	int64_t time_ms;
	enum bv_client_msg_state state;
	/* 1: a kind this version cannot show ("update the app"), text "". */
	int unsupported;
	/* The case file's reference ("2026/000123") once the municipality's
	 * archive has journaled the message, else NULL. */
	const char *journal;
	const char *text; /* NUL-terminated, text_len bytes */
	size_t text_len;
	/* A notice from the service, else NULL: then sender is "",
	 * sender_device 0, text "" and state RECEIVED. */
	const struct bv_client_notice *notice;
	/* A secure e-post (bv_client_send_email()): its subject (UTF-8
	 * without control characters, 1 … BV_CLIENT_SUBJECT_MAX bytes; still
	 * a peer's words: escape it for your display), else NULL (a chat
	 * text). text is its body. */
	const char *subject;
	/* An e-post's thread: the message id of the thread's first e-post
	 * (the first one's own id); NULL for a chat text. */
	const char *thread;
	/* When the service will have answered (ms since the epoch), as the
	 * sender set it; 0 when not given. */
	int64_t answer_by_ms;
	/* Its files (bv_client_send_attachments()), fetched with
	 * bv_client_attachment_fetch(message_id, index, …); NULL and 0 when
	 * none. */
	const struct bv_client_attachment *attachments;
	size_t n_attachments;
};

/* Return 0 to go on, anything else to stop (returned by the call). */
typedef int (*bv_client_message_cb)(void *arg,
				    const struct bv_client_message *m);

/*
 * Calls cb for each message of conversation with seq > after_seq (0: all),
 * in order, from the local store (no network). The history cannot be
 * deleted. A placeholder for a message that could not be decrypted (or
 * that claimed another conversation) is listed under the conversation its
 * sender named to the relay, and the message itself, once resent, too.
 * Returns 0, cb's nonzero value, BV_EINVAL, BV_EIO or BV_ENOMEM.
 */
int bv_client_history(struct bv_client *c, const char *conversation,
		      int64_t after_seq, bv_client_message_cb cb, void *arg);

/* One conversation of the local history; pointers borrowed for the call. */
struct bv_client_conversation {
	const char *conversation;
	int64_t last_seq;
	int64_t last_time_ms;
	int64_t n_messages;
};

typedef int (*bv_client_conversation_cb)(
	void *arg, const struct bv_client_conversation *cv);

/*
 * Calls cb for each conversation with messages in the local store, the
 * most recently active first. Returns 0, cb's nonzero value, BV_EINVAL,
 * BV_EIO or BV_ENOMEM.
 */
int bv_client_conversations(struct bv_client *c, bv_client_conversation_cb cb,
			    void *arg);

/* A static English sentence for a BV_E* code. */
const char *bv_client_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif
