/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * store_signal.c: libsignal's session, prekey, signed prekey and identity
 * key stores as callbacks on a struct bv_store, for both backends (store.c,
 * store_mem.c): written against store.h only, so it knows neither SQLite
 * nor the memory image. Translates BV_E* codes to libsignal's and counted
 * names to NUL-terminated ones; keeps no state of its own.
 */
#include <string.h>

#include "bv_error.h"
#include "bv_util.h"
#include "store.h"

static int
to_sg(int rc)
{
	switch (rc) {
	case 0:
		return SG_SUCCESS;
	case BV_ENOMEM:
		return SG_ERR_NOMEM;
	case BV_EINVAL:
		return SG_ERR_INVAL;
	default:
		return SG_ERR_UNKNOWN;
	}
}

/* libsignal's names are counted, ours NUL-terminated. */
static int
sg_name(const char *name, size_t len, char **out)
{
	if (!name || memchr(name, '\0', len))
		return SG_ERR_INVAL;
	*out = bv_strndup(name, len);
	return *out ? 0 : SG_ERR_NOMEM;
}

/* Moves buf into a new signal_buffer, wiping and freeing buf. */
static int
sg_buffer(uint8_t *buf, size_t len, signal_buffer **out)
{
	signal_buffer *b;

	b = signal_buffer_create(buf, len);
	bv_wipe(buf, len);
	bv_free(buf);
	if (!b)
		return SG_ERR_NOMEM;
	*out = b;
	return 0;
}

static int
sg_load_session(signal_buffer **record, signal_buffer **user_record,
		const signal_protocol_address *address, void *user_data)
{
	uint8_t *r = NULL, *u = NULL;
	size_t rlen = 0, ulen = 0;
	signal_buffer *rb = NULL;
	char *name = NULL;
	int rc, found = 0;

	rc = sg_name(address->name, address->name_len, &name);
	if (rc < 0)
		return rc;
	rc = bv_store_session_load(user_data, name, address->device_id, &r,
				   &rlen, &u, &ulen, &found);
	bv_free(name);
	if (rc < 0)
		return to_sg(rc);
	if (!found)
		return 0;
	rc = sg_buffer(r, rlen, &rb);
	if (rc < 0) {
		if (u)
			bv_wipe(u, ulen);
		bv_free(u);
		return rc;
	}
	if (u) {
		rc = sg_buffer(u, ulen, user_record);
		if (rc < 0) {
			signal_buffer_bzero_free(rb);
			return rc;
		}
	}
	*record = rb;
	return 1;
}

static int
sg_sub_device_sessions(signal_int_list **sessions, const char *name,
		       size_t name_len, void *user_data)
{
	signal_int_list *l = NULL;
	int32_t *ids = NULL;
	char *n = NULL;
	size_t count = 0, i;
	int rc;

	rc = sg_name(name, name_len, &n);
	if (rc < 0)
		return rc;
	rc = bv_store_session_devices(user_data, n, &ids, &count);
	if (rc < 0) {
		rc = to_sg(rc);
		goto out;
	}
	l = signal_int_list_alloc();
	if (!l) {
		rc = SG_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < count; i++) {
		if (signal_int_list_push_back(l, ids[i]) < 0) {
			rc = SG_ERR_NOMEM;
			goto out;
		}
	}
	*sessions = l;
	l = NULL;
	rc = (int)count;
out:
	signal_int_list_free(l);
	bv_free(ids);
	bv_free(n);
	return rc;
}

static int
sg_store_session(const signal_protocol_address *address, uint8_t *record,
		 size_t record_len, uint8_t *user_record,
		 size_t user_record_len, void *user_data)
{
	char *name = NULL;
	int rc;

	rc = sg_name(address->name, address->name_len, &name);
	if (rc < 0)
		return rc;
	rc = bv_store_session_store(user_data, name, address->device_id, record,
				    record_len, user_record,
				    user_record ? user_record_len : 0);
	bv_free(name);
	return to_sg(rc);
}

static int
sg_contains_session(const signal_protocol_address *address, void *user_data)
{
	char *name = NULL;
	int rc, found = 0;

	rc = sg_name(address->name, address->name_len, &name);
	if (rc < 0)
		return rc;
	rc = bv_store_session_contains(user_data, name, address->device_id,
				       &found);
	bv_free(name);
	return rc < 0 ? to_sg(rc) : found;
}

static int
sg_delete_session(const signal_protocol_address *address, void *user_data)
{
	char *name = NULL;
	int rc, deleted = 0;

	rc = sg_name(address->name, address->name_len, &name);
	if (rc < 0)
		return rc;
	rc = bv_store_session_delete(user_data, name, address->device_id,
				     &deleted);
	bv_free(name);
	return rc < 0 ? to_sg(rc) : deleted > 0;
}

static int
sg_delete_all_sessions(const char *name, size_t name_len, void *user_data)
{
	char *n = NULL;
	int rc, deleted = 0;

	rc = sg_name(name, name_len, &n);
	if (rc < 0)
		return rc;
	rc = bv_store_session_delete_all(user_data, n, &deleted);
	bv_free(n);
	return rc < 0 ? to_sg(rc) : deleted;
}

void
bv_store_signal_session_store(struct bv_store *s,
			      signal_protocol_session_store *out)
{
	memset(out, 0, sizeof(*out));
	out->load_session_func = sg_load_session;
	out->get_sub_device_sessions_func = sg_sub_device_sessions;
	out->store_session_func = sg_store_session;
	out->contains_session_func = sg_contains_session;
	out->delete_session_func = sg_delete_session;
	out->delete_all_sessions_func = sg_delete_all_sessions;
	out->user_data = s;
}

/*
 * libsignal wants SG_ERR_INVALID_KEY_ID for a missing id. store.h's get
 * returns BV_EINVAL for a missing id or a NULL argument (a record that is
 * there but cannot be read is BV_EIO or BV_ENOMEM); with s checked here and
 * our outputs never NULL, BV_EINVAL means the id is missing.
 */
static int
sg_load_prekey_any(int is_signed, signal_buffer **record, uint32_t id,
		   void *user_data)
{
	uint8_t *r = NULL;
	size_t len = 0;
	int rc;

	if (!user_data)
		return SG_ERR_INVAL;
	rc = bv_store_prekey_get(user_data, is_signed, id, &r, &len);
	if (rc == BV_EINVAL)
		return SG_ERR_INVALID_KEY_ID;
	if (rc < 0)
		return to_sg(rc);
	return sg_buffer(r, len, record);
}

static int
sg_load_pre_key(signal_buffer **record, uint32_t id, void *user_data)
{
	return sg_load_prekey_any(0, record, id, user_data);
}

static int
sg_store_pre_key(uint32_t id, uint8_t *record, size_t len, void *user_data)
{
	return to_sg(bv_store_prekey_put(user_data, 0, id, record, len));
}

static int
sg_contains_pre_key(uint32_t id, void *user_data)
{
	int found = 0, rc;

	rc = bv_store_prekey_contains(user_data, 0, id, &found);
	return rc < 0 ? to_sg(rc) : found;
}

static int
sg_remove_pre_key(uint32_t id, void *user_data)
{
	return to_sg(bv_store_prekey_remove(user_data, 0, id));
}

static int
sg_load_signed_pre_key(signal_buffer **record, uint32_t id, void *user_data)
{
	return sg_load_prekey_any(1, record, id, user_data);
}

static int
sg_store_signed_pre_key(uint32_t id, uint8_t *record, size_t len,
			void *user_data)
{
	return to_sg(bv_store_prekey_put(user_data, 1, id, record, len));
}

static int
sg_contains_signed_pre_key(uint32_t id, void *user_data)
{
	int found = 0, rc;

	rc = bv_store_prekey_contains(user_data, 1, id, &found);
	return rc < 0 ? to_sg(rc) : found;
}

static int
sg_remove_signed_pre_key(uint32_t id, void *user_data)
{
	return to_sg(bv_store_prekey_remove(user_data, 1, id));
}

void
bv_store_signal_pre_key_store(struct bv_store *s,
			      signal_protocol_pre_key_store *out)
{
	memset(out, 0, sizeof(*out));
	out->load_pre_key = sg_load_pre_key;
	out->store_pre_key = sg_store_pre_key;
	out->contains_pre_key = sg_contains_pre_key;
	out->remove_pre_key = sg_remove_pre_key;
	out->user_data = s;
}

void
bv_store_signal_signed_pre_key_store(struct bv_store *s,
				     signal_protocol_signed_pre_key_store *out)
{
	memset(out, 0, sizeof(*out));
	out->load_signed_pre_key = sg_load_signed_pre_key;
	out->store_signed_pre_key = sg_store_signed_pre_key;
	out->contains_signed_pre_key = sg_contains_signed_pre_key;
	out->remove_signed_pre_key = sg_remove_signed_pre_key;
	out->user_data = s;
}

static int
sg_get_identity_key_pair(signal_buffer **public_data,
			 signal_buffer **private_data, void *user_data)
{
	uint8_t *pub = NULL, *priv = NULL;
	size_t pub_len = 0, priv_len = 0;
	signal_buffer *pb = NULL;
	uint32_t reg;
	int rc;

	rc = bv_store_identity_get(user_data, &pub, &pub_len, &priv, &priv_len,
				   &reg);
	if (rc < 0)
		return to_sg(rc);
	rc = sg_buffer(pub, pub_len, &pb);
	if (rc < 0) {
		bv_wipe(priv, priv_len);
		bv_free(priv);
		return rc;
	}
	rc = sg_buffer(priv, priv_len, private_data);
	if (rc < 0) {
		signal_buffer_free(pb);
		return rc;
	}
	*public_data = pb;
	return 0;
}

static int
sg_get_local_registration_id(void *user_data, uint32_t *registration_id)
{
	uint8_t *pub = NULL, *priv = NULL;
	size_t pub_len = 0, priv_len = 0;
	int rc;

	rc = bv_store_identity_get(user_data, &pub, &pub_len, &priv, &priv_len,
				   registration_id);
	if (rc < 0)
		return to_sg(rc);
	bv_free(pub);
	bv_wipe(priv, priv_len);
	bv_free(priv);
	return 0;
}

/*
 * libsignal calls this after is_trusted_identity said yes, so a key that
 * differs here was never accepted: refuse it rather than overwrite. A NULL
 * key ("forget it") is ignored: forgetting would let the next key in
 * silently on first use.
 */
static int
sg_save_identity(const signal_protocol_address *address, uint8_t *key_data,
		 size_t key_len, void *user_data)
{
	enum bv_trust t = BV_TRUST_NEW;
	char *name = NULL;
	int rc;

	if (!key_data)
		return 0;
	rc = sg_name(address->name, address->name_len, &name);
	if (rc < 0)
		return rc;
	rc = bv_store_identity_save(user_data, name, address->device_id,
				    key_data, key_len, &t);
	bv_free(name);
	if (rc < 0)
		return to_sg(rc);
	return t == BV_TRUST_CHANGED ? SG_ERR_UNTRUSTED_IDENTITY : 0;
}

/* Trust on first use; a changed key is untrusted until accepted. */
static int
sg_is_trusted_identity(const signal_protocol_address *address,
		       uint8_t *key_data, size_t key_len, void *user_data)
{
	enum bv_trust t = BV_TRUST_NEW;
	char *name = NULL;
	int rc;

	rc = sg_name(address->name, address->name_len, &name);
	if (rc < 0)
		return rc;
	rc = bv_store_identity_check(user_data, name, address->device_id,
				     key_data, key_len, &t);
	bv_free(name);
	if (rc < 0)
		return to_sg(rc);
	return t != BV_TRUST_CHANGED;
}

void
bv_store_signal_identity_key_store(struct bv_store *s,
				   signal_protocol_identity_key_store *out)
{
	memset(out, 0, sizeof(*out));
	out->get_identity_key_pair = sg_get_identity_key_pair;
	out->get_local_registration_id = sg_get_local_registration_id;
	out->save_identity = sg_save_identity;
	out->is_trusted_identity = sg_is_trusted_identity;
	out->user_data = s;
}
