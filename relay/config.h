/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * config.h: bvchat-relay's settings, from defaults, then the config file,
 * then command-line flags (later wins). relay/bvchat-relay.conf.example
 * documents every directive; the table in config.c is the single source of
 * names, defaults and ranges for the file, the flags and --help.
 */
#ifndef BV_RELAY_CONFIG_H
#define BV_RELAY_CONFIG_H

#include <stddef.h>
#include <stdio.h>
#include "bv_proto.h"

struct relay_config {
	char *listen;	/* address to bind, "127.0.0.1" */
	unsigned port;	/* 8480 */
	char *database; /* libpq conninfo */
	char *log_level;
	struct bv_limits limits;
	unsigned max_prekeys_stock;
	unsigned prekeys_low_watermark;
	unsigned max_devices_per_account;
	unsigned max_queue_per_device;
	unsigned sends_per_minute;
	unsigned max_connections_per_account;
	unsigned max_requests_in_flight;
	unsigned deliver_window;
	unsigned auth_timeout_ms;
	unsigned enrollment_token_max_ttl_s;
	unsigned max_output_bytes; /* per connection, then 4003 */
	unsigned shutdown_timeout_ms;
	unsigned max_commit_batch;
	unsigned office_clock_offset_s; /* tests and demos only; 0 */
	char *widget_dir;		/* "" = no widget (widget.c) */
	char *widget_origins;		/* origins the widget is served under */
	char *widget_embed_origins;	/* origins that may embed its frame */
	unsigned widget_max_file_bytes;
	char *invite_key_file; /* "" = no invites (invite.c) */
	unsigned invite_max_ttl_s;
	unsigned invite_failures_per_hour; /* per client address */
	char *client_ip_header;		   /* "" = the TCP peer's address */

	/* Notifications: notify_set on the relay; the rest is read only by
	 * bvchat-notifier (relay/notifier.c), from the same file. */
	unsigned webpush_allow_loopback_http; /* tests only: 0 */
	unsigned notify_poll_ms;
	unsigned notify_batch;
	unsigned notify_max_attempts;
	unsigned notify_backoff_s;     /* first retry after this */
	unsigned notify_backoff_max_s; /* doubling up to this */
	unsigned notify_lease_s;       /* a claimed send is retried after */
	unsigned notify_timeout_ms;    /* one SMS/SMTP/push request */
	char *varsling_fiks_config;    /* "" = no SMS channel */
	char *varsling_konto;	       /* Fiks Varsling kontoId */
	char *smtp_url;		       /* "" = no e-mail channel */
	char *smtp_from;
	char *smtp_credentials_file; /* "user:password", or "" */
	unsigned max_blob_bytes;     /* largest attachment (blob.c) */
	unsigned blob_upload_ttl_s;  /* an upload's deadline */
	unsigned blob_sweep_interval_s;
	unsigned blob_stall_timeout_s; /* an upload's relay presumed dead */
	char *webpush_vapid_key;       /* notifier: PEM file; "" = no push */
	char *webpush_subject;	       /* notifier: mailto: or https: */
	char *webpush_vapid_public;    /* relay: b64url point, in challenge */
	/* Staff tasks (migrations/0011), sent by bvchat-notifier. */
	char *task_fiks_config; /* our FIKS IO account; "" = no tasks */
	char *task_link;	/* "{case}", "{conversation}" filled; or "" */
};

/* Sets every field to its documented default (strings are allocated). */
int config_defaults(struct relay_config *c);

/*
 * Reads "directive value" lines ('#' starts a comment). Returns 0, or
 * BV_ECONFIG after printing "file:line: why" to stderr, or BV_EIO.
 */
int config_load_file(struct relay_config *c, const char *path);

/*
 * Sets one directive by name from a string, checking its range. Returns 0,
 * BV_ECONFIG (unknown name or bad value; message in err), BV_ENOMEM.
 */
int config_set(struct relay_config *c, const char *name, const char *value,
	       char *err, size_t errlen);

/* Prints every directive with its default and unit (for --help). */
void config_print_help(FILE *f);

void config_cleanup(struct relay_config *c);

#endif
