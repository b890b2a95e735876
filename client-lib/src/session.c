/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * session.c: libbvchat's Signal session layer (see session.h): identity and
 * prekey generation, sessions from bundles, per-device encryption, and
 * decryption with duplicate suppression and placeholders. The one file that
 * calls libsignal's session API; its codes become BV_E* in from_sg().
 * No network I/O, no JSON (content.c), no SQL (store.c).
 */
#include <stdlib.h>
#include <string.h>

#include <curve.h>
#include <fingerprint.h>
#include <key_helper.h>
#include <protocol.h>
#include <ratchet.h>
#include <session_builder.h>
#include <session_cipher.h>
#include <session_pre_key.h>

#include "bv_error.h"
#include "bv_util.h"
#include "session.h"

/*
 * The store has no table for counters, so the next prekey ids and the time
 * of the last signed prekey live in a sealed session record under a name
 * no peer can have (peers are uuids): be32 next one-time id, be32 next
 * signed id, be64 ms of the newest signed prekey, be32 id of the signed
 * prekey the relay last confirmed (the last two are absent in records
 * written before rotation: then rotation is due).
 */
#define META_NAME   "~bvchat:prekey_ids"
#define META_DEVICE 0

struct bv_session {
	struct bv_store *store;
	signal_context *ctx;
	signal_protocol_store_context *sctx;
	char account[BV_UUID_LEN + 1];
	uint32_t device;
};

/*
 * libsignal's codes as BV_E*: bad peer data is BV_EFIELD, SG_ERR_UNKNOWN
 * (what the store adapters return for BV_EIO, and the crypto provider for
 * OpenSSL failures) is BV_EIO.
 */
static int
from_sg(int sg)
{
	if (sg >= 0)
		return 0;
	switch (sg) {
	case SG_ERR_NOMEM:
		return BV_ENOMEM;
	case SG_ERR_INVAL:
		return BV_EINVAL;
	case SG_ERR_UNKNOWN:
		return BV_EIO;
	case SG_ERR_INVALID_KEY:
	case SG_ERR_INVALID_KEY_ID:
	case SG_ERR_INVALID_MAC:
	case SG_ERR_INVALID_MESSAGE:
	case SG_ERR_INVALID_VERSION:
	case SG_ERR_LEGACY_MESSAGE:
	case SG_ERR_INVALID_PROTO_BUF:
	case SG_ERR_VRF_SIG_VERIF_FAILED:
	case SG_ERR_STALE_KEY_EXCHANGE:
		return BV_EFIELD;
	default:
		bv_log(BV_LOG_DEBUG, "session: libsignal error %d", sg);
		return BV_EINTERNAL;
	}
}

static int
device_valid(uint32_t device)
{
	return device >= 1 && device <= INT32_MAX;
}

static signal_protocol_address
address_of(const char *account, uint32_t device)
{
	signal_protocol_address a;

	a.name = account;
	a.name_len = strlen(account);
	a.device_id = (int32_t)device;
	return a;
}

static int
make_identity(struct bv_session *s)
{
	ratchet_identity_key_pair *kp = NULL;
	signal_buffer *pub = NULL, *priv = NULL;
	uint32_t reg = 0;
	int rc;

	rc = from_sg(signal_protocol_key_helper_generate_identity_key_pair(
		&kp, s->ctx));
	if (rc < 0)
		goto out;
	rc = from_sg(signal_protocol_key_helper_generate_registration_id(
		&reg, 0, s->ctx));
	if (rc < 0)
		goto out;
	rc = from_sg(ec_public_key_serialize(
		&pub, ratchet_identity_key_pair_get_public(kp)));
	if (rc < 0)
		goto out;
	rc = from_sg(ec_private_key_serialize(
		&priv, ratchet_identity_key_pair_get_private(kp)));
	if (rc < 0)
		goto out;
	rc = bv_store_identity_put(
		s->store, signal_buffer_data(pub), signal_buffer_len(pub),
		signal_buffer_data(priv), signal_buffer_len(priv), reg);
out:
	signal_buffer_free(pub);
	signal_buffer_bzero_free(priv);
	SIGNAL_UNREF(kp);
	return rc;
}

int
bv_session_new(struct bv_store *store, signal_context *ctx,
	       const char *own_account, uint32_t own_device,
	       struct bv_session **out)
{
	signal_protocol_session_store ss;
	signal_protocol_pre_key_store ps;
	signal_protocol_signed_pre_key_store sps;
	signal_protocol_identity_key_store is;
	struct bv_session *s = NULL;
	uint8_t *pub = NULL, *priv = NULL;
	size_t pub_len = 0, priv_len = 0;
	uint32_t reg;
	int rc;

	if (!store || !ctx || !own_account || !out ||
	    !bv_uuid_valid(own_account) || !device_valid(own_device))
		return BV_EINVAL;
	s = bv_calloc(1, sizeof(*s));
	if (!s)
		return BV_ENOMEM;
	s->store = store;
	s->ctx = ctx;
	s->device = own_device;
	memcpy(s->account, own_account, BV_UUID_LEN + 1);

	rc = from_sg(signal_protocol_store_context_create(&s->sctx, ctx));
	if (rc < 0)
		goto out;
	bv_store_signal_session_store(store, &ss);
	bv_store_signal_pre_key_store(store, &ps);
	bv_store_signal_signed_pre_key_store(store, &sps);
	bv_store_signal_identity_key_store(store, &is);
	if (signal_protocol_store_context_set_session_store(s->sctx, &ss) ||
	    signal_protocol_store_context_set_pre_key_store(s->sctx, &ps) ||
	    signal_protocol_store_context_set_signed_pre_key_store(s->sctx,
								   &sps) ||
	    signal_protocol_store_context_set_identity_key_store(s->sctx,
								 &is)) {
		rc = BV_EINTERNAL;
		goto out;
	}

	/* BV_EINVAL from the store means "no identity yet". */
	rc = bv_store_identity_get(store, &pub, &pub_len, &priv, &priv_len,
				   &reg);
	if (rc == BV_EINVAL)
		rc = make_identity(s);
	if (rc < 0)
		goto out;
	*out = s;
	s = NULL;
out:
	bv_free(pub);
	if (priv)
		bv_wipe(priv, priv_len);
	bv_free(priv);
	bv_session_free(s);
	return rc;
}

void
bv_session_free(struct bv_session *s)
{
	if (!s)
		return;
	if (s->sctx)
		signal_protocol_store_context_destroy(s->sctx);
	bv_free(s);
}

int
bv_session_identity(struct bv_session *s, uint8_t key[BV_KEY_LEN],
		    uint32_t *registration_id)
{
	uint8_t *pub = NULL, *priv = NULL;
	size_t pub_len = 0, priv_len = 0;
	uint32_t reg;
	int rc;

	if (!s || !key || !registration_id)
		return BV_EINVAL;
	rc = bv_store_identity_get(s->store, &pub, &pub_len, &priv, &priv_len,
				   &reg);
	if (rc < 0)
		goto out;
	if (pub_len != BV_KEY_LEN) {
		rc = BV_EIO;
		goto out;
	}
	memcpy(key, pub, BV_KEY_LEN);
	*registration_id = reg;
out:
	bv_free(pub);
	if (priv)
		bv_wipe(priv, priv_len);
	bv_free(priv);
	return rc;
}

/* --- prekeys ------------------------------------------------------------ */

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t
get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

struct meta {
	uint32_t next_one_time; /* 1 when none stored */
	uint32_t next_signed;
	int64_t signed_ms;     /* newest signed prekey made; 0: not known */
	uint32_t confirmed_sg; /* 0: none confirmed yet */
};

static int
meta_load(struct bv_session *s, struct meta *m)
{
	uint8_t *rec = NULL, *user = NULL;
	size_t len = 0, user_len = 0;
	int found = 0, rc;

	memset(m, 0, sizeof(*m));
	m->next_one_time = 1;
	m->next_signed = 1;
	rc = bv_store_session_load(s->store, META_NAME, META_DEVICE, &rec, &len,
				   &user, &user_len, &found);
	if (rc < 0 || !found)
		return rc;
	if (len == 8 || len == 20) {
		m->next_one_time = get_be32(rec);
		m->next_signed = get_be32(rec + 4);
		if (len == 20) {
			m->signed_ms =
				(int64_t)((uint64_t)get_be32(rec + 8) << 32 |
					  get_be32(rec + 12));
			m->confirmed_sg = get_be32(rec + 16);
		}
	} else {
		rc = BV_EIO;
	}
	bv_free(rec);
	bv_free(user);
	return rc;
}

static int
meta_save(struct bv_session *s, const struct meta *m)
{
	uint8_t rec[20];

	put_be32(rec, m->next_one_time);
	put_be32(rec + 4, m->next_signed);
	put_be32(rec + 8, (uint32_t)((uint64_t)m->signed_ms >> 32));
	put_be32(rec + 12, (uint32_t)m->signed_ms);
	put_be32(rec + 16, m->confirmed_sg);
	return bv_store_session_store(s->store, META_NAME, META_DEVICE, rec,
				      sizeof(rec), NULL, 0);
}

static uint32_t
id_next(uint32_t id)
{
	return id >= PRE_KEY_MEDIUM_MAX_VALUE || id == 0 ? 1 : id + 1;
}

static int
pub_to_wire(ec_public_key *k, uint8_t out[BV_KEY_LEN])
{
	signal_buffer *b = NULL;
	int rc;

	rc = from_sg(ec_public_key_serialize(&b, k));
	if (rc < 0)
		return rc;
	if (signal_buffer_len(b) == BV_KEY_LEN)
		memcpy(out, signal_buffer_data(b), BV_KEY_LEN);
	else
		rc = BV_EINTERNAL;
	signal_buffer_free(b);
	return rc;
}

static int
load_identity_pair(struct bv_session *s, ratchet_identity_key_pair **out)
{
	uint8_t *pub = NULL, *priv = NULL;
	size_t pub_len = 0, priv_len = 0;
	ec_public_key *pk = NULL;
	ec_private_key *sk = NULL;
	uint32_t reg;
	int rc;

	rc = bv_store_identity_get(s->store, &pub, &pub_len, &priv, &priv_len,
				   &reg);
	if (rc < 0)
		goto out;
	rc = from_sg(curve_decode_point(&pk, pub, pub_len, s->ctx));
	if (rc < 0)
		goto out;
	rc = from_sg(curve_decode_private_point(&sk, priv, priv_len, s->ctx));
	if (rc < 0)
		goto out;
	rc = from_sg(ratchet_identity_key_pair_create(out, pk, sk));
out:
	SIGNAL_UNREF(pk);
	SIGNAL_UNREF(sk);
	bv_free(pub);
	if (priv)
		bv_wipe(priv, priv_len);
	bv_free(priv);
	return rc;
}

static int
make_signed(struct bv_session *s, uint32_t id, struct bv_session_keys *k)
{
	ratchet_identity_key_pair *kp = NULL;
	session_signed_pre_key *spk = NULL;
	int rc;

	rc = load_identity_pair(s, &kp);
	if (rc < 0)
		goto out;
	rc = from_sg(signal_protocol_key_helper_generate_signed_pre_key(
		&spk, kp, id, (uint64_t)bv_now_ms(), s->ctx));
	if (rc < 0)
		goto out;
	if (session_signed_pre_key_get_signature_len(spk) != BV_SIG_LEN) {
		rc = BV_EINTERNAL;
		goto out;
	}
	rc = pub_to_wire(ec_key_pair_get_public(
				 session_signed_pre_key_get_key_pair(spk)),
			 k->signed_prekey.key);
	if (rc < 0)
		goto out;
	rc = from_sg(signal_protocol_signed_pre_key_store_key(s->sctx, spk));
	if (rc < 0)
		goto out;
	k->signed_prekey.id = id;
	memcpy(k->signed_prekey_signature,
	       session_signed_pre_key_get_signature(spk), BV_SIG_LEN);
	k->has_signed_prekey = 1;
out:
	SIGNAL_UNREF(spk);
	SIGNAL_UNREF(kp);
	return rc;
}

static int
make_one_time(struct bv_session *s, uint32_t first, size_t n,
	      struct bv_session_keys *k)
{
	signal_protocol_key_helper_pre_key_list_node *head = NULL, *node;
	session_pre_key *pk;
	uint32_t id = first;
	size_t i;
	int rc = 0;

	/* One at a time: the helper's ids do not wrap at 0xFFFFFF. */
	for (i = 0; i < n; i++, id = id_next(id)) {
		rc = from_sg(signal_protocol_key_helper_generate_pre_keys(
			&head, id, 1, s->ctx));
		if (rc < 0)
			goto out;
		node = head;
		pk = signal_protocol_key_helper_key_list_element(node);
		rc = pub_to_wire(ec_key_pair_get_public(
					 session_pre_key_get_key_pair(pk)),
				 k->one_time[i].key);
		if (rc < 0)
			goto out;
		rc = from_sg(signal_protocol_pre_key_store_key(s->sctx, pk));
		if (rc < 0)
			goto out;
		k->one_time[i].id = session_pre_key_get_id(pk);
		signal_protocol_key_helper_key_list_free(head);
		head = NULL;
	}
	k->n_one_time = n;
out:
	signal_protocol_key_helper_key_list_free(head);
	return rc;
}

int
bv_session_keys_new(struct bv_session *s, size_t n_one_time, int with_signed,
		    struct bv_session_keys **out)
{
	struct bv_session_keys *k = NULL;
	struct meta m;
	int in_tx = 0, rc;

	if (!s || !out || n_one_time > BV_SESSION_PREKEYS_MAX ||
	    (!n_one_time && !with_signed))
		return BV_EINVAL;
	k = bv_calloc(1, sizeof(*k));
	if (!k)
		return BV_ENOMEM;
	if (n_one_time) {
		k->one_time = bv_calloc(n_one_time, sizeof(*k->one_time));
		if (!k->one_time) {
			rc = BV_ENOMEM;
			goto out;
		}
	}
	rc = bv_store_begin(s->store);
	if (rc < 0)
		goto out;
	in_tx = 1;
	rc = meta_load(s, &m);
	if (rc < 0)
		goto out;
	if (with_signed) {
		rc = make_signed(s, id_next(m.next_signed - 1), k);
		if (rc < 0)
			goto out;
		m.next_signed = id_next(k->signed_prekey.id);
		m.signed_ms = bv_now_ms();
	}
	if (n_one_time) {
		rc = make_one_time(s, id_next(m.next_one_time - 1), n_one_time,
				   k);
		if (rc < 0)
			goto out;
		m.next_one_time = id_next(k->one_time[n_one_time - 1].id);
	}
	rc = meta_save(s, &m);
	if (rc < 0)
		goto out;
	rc = bv_store_commit(s->store);
	if (rc < 0)
		goto out;
	in_tx = 0;
	*out = k;
	k = NULL;
out:
	if (in_tx)
		bv_store_rollback(s->store);
	bv_session_keys_free(k);
	return rc;
}

/* Signal's iteration count for displayable fingerprints. */
#define SAFETY_ITERATIONS	 5200
#define SAFETY_SCANNABLE_VERSION 1

int
bv_session_safety_number(struct bv_session *s, const char *account,
			 uint32_t device, char out[BV_SESSION_SAFETY_LEN + 1])
{
	uint8_t *pub = NULL, *priv = NULL, *peer = NULL;
	size_t pub_len = 0, priv_len = 0, peer_len = 0;
	ec_public_key *ours = NULL, *theirs = NULL;
	fingerprint_generator *gen = NULL;
	fingerprint *fp = NULL;
	char local[BV_UUID_LEN + 12], remote[BV_UUID_LEN + 12];
	const char *text;
	uint32_t reg;
	int found = 0, rc;

	if (!s || !account || !bv_uuid_valid(account) || !out || device == 0)
		return BV_EINVAL;
	rc = bv_store_identity_get(s->store, &pub, &pub_len, &priv, &priv_len,
				   &reg);
	if (rc == 0)
		rc = bv_store_identity_peer(s->store, account, (int32_t)device,
					    &peer, &peer_len, &found);
	if (rc == 0 && !found)
		rc = BV_EINVAL;
	if (rc < 0)
		goto out;
	rc = from_sg(curve_decode_point(&ours, pub, pub_len, s->ctx));
	if (rc == 0)
		rc = from_sg(
			curve_decode_point(&theirs, peer, peer_len, s->ctx));
	if (rc == 0)
		rc = from_sg(fingerprint_generator_create(
			&gen, SAFETY_ITERATIONS, SAFETY_SCANNABLE_VERSION,
			s->ctx));
	if (rc < 0)
		goto out;
	/* Devices have keys of their own, so a device is the identity. */
	snprintf(local, sizeof(local), "%s.%u", s->account, s->device);
	snprintf(remote, sizeof(remote), "%s.%u", account, device);
	rc = from_sg(fingerprint_generator_create_for(gen, local, ours, remote,
						      theirs, &fp));
	if (rc < 0)
		goto out;
	text = displayable_fingerprint_text(fingerprint_get_displayable(fp));
	if (!text || strlen(text) != BV_SESSION_SAFETY_LEN) {
		rc = BV_EINTERNAL;
		goto out;
	}
	memcpy(out, text, BV_SESSION_SAFETY_LEN + 1);
out:
	SIGNAL_UNREF(fp);
	fingerprint_generator_free(gen);
	SIGNAL_UNREF(ours);
	SIGNAL_UNREF(theirs);
	if (priv)
		bv_wipe(priv, priv_len);
	bv_free(priv);
	bv_free(pub);
	bv_free(peer);
	return rc;
}

int
bv_session_signed_age(struct bv_session *s, int64_t now_ms, int64_t *age_ms)
{
	struct meta m;
	int rc;

	if (!s || !age_ms)
		return BV_EINVAL;
	rc = meta_load(s, &m);
	if (rc < 0)
		return rc;
	*age_ms = m.signed_ms > 0 ? now_ms - m.signed_ms : INT64_MAX;
	return 0;
}

int
bv_session_signed_confirmed(struct bv_session *s, uint32_t id)
{
	struct meta m;
	int rc;

	if (!s || id == 0 || id > PRE_KEY_MEDIUM_MAX_VALUE)
		return BV_EINVAL;
	rc = bv_store_begin(s->store);
	if (rc < 0)
		return rc;
	rc = meta_load(s, &m);
	/* Peers may still use the one the relay had before id (PreKey
	 * messages on their way): everything older than that goes. */
	if (rc == 0 && m.confirmed_sg && m.confirmed_sg < id)
		rc = bv_store_prekey_remove_below(s->store, 1, m.confirmed_sg);
	if (rc == 0) {
		m.confirmed_sg = id;
		rc = meta_save(s, &m);
	}
	if (rc == 0)
		return bv_store_commit(s->store);
	bv_store_rollback(s->store);
	return rc;
}

void
bv_session_keys_free(struct bv_session_keys *k)
{
	if (!k)
		return;
	bv_free(k->one_time);
	bv_free(k);
}

/* --- bundles ------------------------------------------------------------ */

static int
process_bundle(struct bv_session *s, const char *account,
	       const struct bv_wire_bundle *b, enum bv_trust *trust)
{
	signal_protocol_address addr = address_of(account, b->device);
	ec_public_key *ik = NULL, *spk = NULL, *otk = NULL;
	session_pre_key_bundle *bundle = NULL;
	session_builder *builder = NULL;
	int rc, sg;

	if (!device_valid(b->device) ||
	    (b->device == s->device && !strcmp(account, s->account)))
		return BV_EINVAL;
	rc = bv_store_identity_check(s->store, account, (int32_t)b->device,
				     b->identity_key, BV_KEY_LEN, trust);
	if (rc < 0 || *trust == BV_TRUST_CHANGED)
		return rc;
	rc = from_sg(
		curve_decode_point(&ik, b->identity_key, BV_KEY_LEN, s->ctx));
	if (rc < 0)
		goto out;
	rc = from_sg(curve_decode_point(&spk, b->signed_prekey.key, BV_KEY_LEN,
					s->ctx));
	if (rc < 0)
		goto out;
	if (b->has_one_time_prekey) {
		rc = from_sg(curve_decode_point(&otk, b->one_time_prekey.key,
						BV_KEY_LEN, s->ctx));
		if (rc < 0)
			goto out;
	}
	rc = from_sg(session_pre_key_bundle_create(
		&bundle, b->registration_id, (int)b->device,
		b->has_one_time_prekey ? b->one_time_prekey.id : 0, otk,
		b->signed_prekey.id, spk, b->signed_prekey_signature,
		BV_SIG_LEN, ik));
	if (rc < 0)
		goto out;
	rc = from_sg(session_builder_create(&builder, s->sctx, &addr, s->ctx));
	if (rc < 0)
		goto out;
	sg = session_builder_process_pre_key_bundle(builder, bundle);
	if (sg == SG_ERR_UNTRUSTED_IDENTITY) {
		/* Changed between our check and libsignal's: same answer. */
		*trust = BV_TRUST_CHANGED;
		rc = 0;
		goto out;
	}
	rc = from_sg(sg);
out:
	if (builder)
		session_builder_free(builder);
	SIGNAL_UNREF(bundle);
	SIGNAL_UNREF(ik);
	SIGNAL_UNREF(spk);
	SIGNAL_UNREF(otk);
	return rc;
}

int
bv_session_process_bundles(struct bv_session *s, const char *account,
			   const struct bv_wire_bundle *bundles, size_t n,
			   enum bv_trust *trust)
{
	size_t i;
	int rc;

	if (!s || !account || !bv_uuid_valid(account) || (!bundles && n) ||
	    (!trust && n))
		return BV_EINVAL;
	for (i = 0; i < n; i++) {
		rc = process_bundle(s, account, &bundles[i], &trust[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int
bv_session_accept_identity(struct bv_session *s, const char *account,
			   uint32_t device, const uint8_t key[BV_KEY_LEN])
{
	if (!s || !account || !key || !bv_uuid_valid(account) ||
	    !device_valid(device))
		return BV_EINVAL;
	return bv_store_identity_accept(s->store, account, (int32_t)device, key,
					BV_KEY_LEN);
}

int
bv_session_has(struct bv_session *s, const char *account, uint32_t device,
	       int *found)
{
	if (!s || !account || !found || !bv_uuid_valid(account) ||
	    !device_valid(device))
		return BV_EINVAL;
	return bv_store_session_contains(s->store, account, (int32_t)device,
					 found);
}

/* --- encryption --------------------------------------------------------- */

static int
encrypt_one(struct bv_session *s, const struct bv_session_recipient *r,
	    const uint8_t *plain, size_t plain_len, struct bv_wire_envelope *e)
{
	signal_protocol_address addr;
	ciphertext_message *msg = NULL;
	session_cipher *cipher = NULL;
	signal_buffer *ser;
	uint8_t *body = NULL;
	char *account = NULL;
	uint32_t reg = r->registration_id;
	int found = 0, rc, type;

	if (!r->account || !bv_uuid_valid(r->account) ||
	    !device_valid(r->device) ||
	    (r->device == s->device && !strcmp(r->account, s->account)))
		return BV_EINVAL;
	rc = bv_store_session_contains(s->store, r->account, (int32_t)r->device,
				       &found);
	if (rc < 0)
		return rc;
	if (!found)
		return BV_EINVAL;
	addr = address_of(r->account, r->device);
	rc = from_sg(session_cipher_create(&cipher, s->sctx, &addr, s->ctx));
	if (rc < 0)
		goto out;
	if (!reg) {
		rc = from_sg(session_cipher_get_remote_registration_id(cipher,
								       &reg));
		if (rc < 0)
			goto out;
	}
	rc = from_sg(session_cipher_encrypt(cipher, plain, plain_len, &msg));
	if (rc < 0)
		goto out;
	type = ciphertext_message_get_type(msg);
	if (type != CIPHERTEXT_SIGNAL_TYPE && type != CIPHERTEXT_PREKEY_TYPE) {
		rc = BV_EINTERNAL;
		goto out;
	}
	ser = ciphertext_message_get_serialized(msg);
	body = bv_malloc(signal_buffer_len(ser));
	account = bv_strdup(r->account);
	if (!body || !account) {
		rc = BV_ENOMEM;
		goto out;
	}
	memcpy(body, signal_buffer_data(ser), signal_buffer_len(ser));
	e->account = account;
	e->device = r->device;
	e->registration_id = reg;
	e->type = (uint8_t)type;
	e->body = body;
	e->body_len = signal_buffer_len(ser);
	account = NULL;
	body = NULL;
out:
	bv_free(account);
	bv_free(body);
	SIGNAL_UNREF(msg);
	if (cipher)
		session_cipher_free(cipher);
	return rc;
}

int
bv_session_encrypt(struct bv_session *s, const struct bv_content *c,
		   const struct bv_session_recipient *rcpts, size_t n,
		   struct bv_session_outgoing **out)
{
	struct bv_session_outgoing *o = NULL;
	uint8_t *plain = NULL;
	size_t plain_len = 0, i;
	int in_tx = 0, rc;

	if (!s || !c || !rcpts || !out || !n || n > BV_WIRE_MAX_ITEMS)
		return BV_EINVAL;
	rc = bv_content_encode(c, &plain, &plain_len);
	if (rc < 0)
		return rc;
	o = bv_calloc(1, sizeof(*o));
	if (!o) {
		rc = BV_ENOMEM;
		goto out;
	}
	o->envs = bv_calloc(n, sizeof(*o->envs));
	if (!o->envs) {
		rc = BV_ENOMEM;
		goto out;
	}
	/* Every session update of one fan-out in one commit (one fsync, not
	 * one per device); inside a caller's transaction, in that one. */
	in_tx = bv_store_begin(s->store) == 0;
	for (i = 0; i < n; i++) {
		rc = encrypt_one(s, &rcpts[i], plain, plain_len, &o->envs[i]);
		if (rc < 0)
			goto out;
		o->n++;
	}
	if (in_tx) {
		in_tx = 0;
		rc = bv_store_commit(s->store);
		if (rc < 0)
			goto out;
	}
	*out = o;
	o = NULL;
out:
	if (in_tx)
		bv_store_rollback(s->store);
	bv_wipe(plain, plain_len);
	bv_free(plain);
	bv_session_outgoing_free(o);
	return rc;
}

void
bv_session_outgoing_free(struct bv_session_outgoing *o)
{
	size_t i;

	if (!o)
		return;
	for (i = 0; i < o->n; i++) {
		bv_free((void *)o->envs[i].account);
		bv_free((void *)o->envs[i].body);
	}
	bv_free(o->envs);
	bv_free(o);
}

/* --- decryption --------------------------------------------------------- */

static int
envelope_valid(const struct bv_session_envelope *e)
{
	return e->sender && bv_uuid_valid(e->sender) &&
	       (!e->conversation || bv_uuid_valid(e->conversation)) &&
	       device_valid(e->sender_device) && e->message_id &&
	       bv_message_id_valid(e->message_id) && (e->body || !e->body_len);
}

/*
 * Decrypts env into *plain (only on BV_SESSION_OK). Peer-caused failures
 * are results; only running out of memory is an error, so that a corrupt
 * envelope can never block the queue by never being acked.
 */
static int
decrypt_raw(struct bv_session *s, const struct bv_session_envelope *env,
	    enum bv_session_result *result, signal_buffer **plain)
{
	signal_protocol_address addr =
		address_of(env->sender, env->sender_device);
	pre_key_signal_message *pm = NULL;
	session_cipher *cipher = NULL;
	signal_message *m = NULL;
	int rc = 0, sg;

	*result = BV_SESSION_UNDECRYPTABLE;
	if (!env->body_len || (env->type != CIPHERTEXT_SIGNAL_TYPE &&
			       env->type != CIPHERTEXT_PREKEY_TYPE))
		return 0;
	sg = session_cipher_create(&cipher, s->sctx, &addr, s->ctx);
	if (sg < 0)
		goto done;
	if (env->type == CIPHERTEXT_PREKEY_TYPE) {
		sg = pre_key_signal_message_deserialize(&pm, env->body,
							env->body_len, s->ctx);
		if (sg >= 0)
			sg = session_cipher_decrypt_pre_key_signal_message(
				cipher, pm, NULL, plain);
	} else {
		sg = signal_message_deserialize(&m, env->body, env->body_len,
						s->ctx);
		if (sg >= 0)
			sg = session_cipher_decrypt_signal_message(cipher, m,
								   NULL, plain);
	}
done:
	switch (sg) {
	case SG_SUCCESS:
		*result = BV_SESSION_OK;
		break;
	case SG_ERR_NOMEM:
		rc = BV_ENOMEM;
		break;
	case SG_ERR_DUPLICATE_MESSAGE:
		*result = BV_SESSION_DUPLICATE;
		break;
	case SG_ERR_UNTRUSTED_IDENTITY:
		*result = BV_SESSION_UNTRUSTED;
		break;
	default:
		bv_log(BV_LOG_INFO,
		       "session: cannot decrypt %s from %.8s… device %u: %s",
		       env->message_id, env->sender, env->sender_device,
		       bv_errname(from_sg(sg)));
		break;
	}
	SIGNAL_UNREF(pm);
	SIGNAL_UNREF(m);
	if (cipher)
		session_cipher_free(cipher);
	return rc;
}

/*
 * Decrypts and decodes. On OK sets *content and *json and *json_len (the
 * unpadded plaintext, wiped and freed by the caller).
 */
static int
decrypt_decode(struct bv_session *s, const struct bv_session_envelope *env,
	       enum bv_session_result *result, struct bv_content **content,
	       uint8_t **json, size_t *json_len)
{
	struct bv_content *c = NULL;
	signal_buffer *plain = NULL;
	uint8_t *j = NULL;
	size_t len = 0;
	int rc;

	rc = decrypt_raw(s, env, result, &plain);
	if (rc < 0 || *result != BV_SESSION_OK)
		goto out;
	rc = bv_content_decode(signal_buffer_data(plain),
			       signal_buffer_len(plain), &c);
	if (rc == BV_ENOMEM)
		goto out;
	if (rc < 0 || strcmp(c->message_id, env->message_id) != 0 ||
	    (env->conversation && c->conversation[0] &&
	     strcmp(c->conversation, env->conversation) != 0)) {
		bv_log(BV_LOG_INFO, "session: malformed content in %s: %s",
		       env->message_id,
		       rc < 0 ? bv_errname(rc)
		       : strcmp(c->message_id, env->message_id)
			       ? "message_id"
			       : "conversation is not the envelope's");
		*result = BV_SESSION_MALFORMED;
		rc = 0;
		goto out;
	}
	if (json) {
		/* Decode accepted the padding, so unpad cannot fail. */
		rc = bv_content_unpad(signal_buffer_data(plain),
				      signal_buffer_len(plain), &len);
		if (rc < 0)
			goto out;
		j = bv_malloc(len ? len : 1);
		if (!j) {
			rc = BV_ENOMEM;
			goto out;
		}
		memcpy(j, signal_buffer_data(plain), len);
		*json = j;
		*json_len = len;
	}
	*content = c;
	c = NULL;
out:
	bv_content_free(c);
	if (plain)
		signal_buffer_bzero_free(plain);
	return rc;
}

int
bv_session_decrypt(struct bv_session *s, const struct bv_session_envelope *env,
		   enum bv_session_result *result, struct bv_content **content)
{
	enum bv_session_result r;
	struct bv_content *c = NULL;
	int rc;

	if (!s || !env || !result || !content || !envelope_valid(env))
		return BV_EINVAL;
	rc = decrypt_decode(s, env, &r, &c, NULL, NULL);
	if (rc < 0)
		return rc;
	*result = r;
	if (r == BV_SESSION_OK)
		*content = c;
	return 0;
}

/* A placeholder, deduplicated under "~id" (not a valid message_id). */
static int
store_placeholder(struct bv_session *s, const struct bv_session_envelope *env,
		  int mark_real, enum bv_session_result *result, int64_t *seq)
{
	char key[BV_MESSAGE_ID_MAX + 2];
	int seen = 0, rc;

	if (!mark_real) {
		key[0] = '~';
		memcpy(key + 1, env->message_id, strlen(env->message_id) + 1);
		rc = bv_store_seen(s->store, env->sender,
				   (int32_t)env->sender_device, key, &seen);
		if (rc < 0)
			return rc;
		if (seen) {
			*result = BV_SESSION_DUPLICATE;
			return 0;
		}
	}
	return bv_store_history_append(
		s->store, env->conversation ? env->conversation : env->sender,
		BV_MSG_IN, env->sender, (int32_t)env->sender_device,
		env->message_id, env->timestamp_ms, NULL, 0,
		BV_MSG_UNDECRYPTABLE, seq);
}

int
bv_session_receive(struct bv_session *s, const struct bv_session_envelope *env,
		   enum bv_session_result *result, struct bv_content **content,
		   int64_t *seq)
{
	enum bv_session_result r = BV_SESSION_UNDECRYPTABLE;
	struct bv_content *c = NULL;
	uint8_t *json = NULL;
	size_t json_len = 0;
	int64_t sq = -1;
	int in_tx = 0, seen = 0, rc;
	const char *conv;

	if (!s || !env || !result || !content || !envelope_valid(env))
		return BV_EINVAL;
	rc = bv_store_begin(s->store);
	if (rc < 0)
		return rc;
	in_tx = 1;
	rc = bv_store_seen(s->store, env->sender, (int32_t)env->sender_device,
			   env->message_id, &seen);
	if (rc < 0)
		goto out;
	if (seen) {
		r = BV_SESSION_DUPLICATE;
		goto done;
	}
	rc = decrypt_decode(s, env, &r, &c, &json, &json_len);
	if (rc < 0)
		goto out;
	switch (r) {
	case BV_SESSION_OK:
		if (c->kind != BV_CONTENT_TEXT && c->kind != BV_CONTENT_EMAIL &&
		    c->kind != BV_CONTENT_UNKNOWN)
			break;
		conv = c->conversation[0]  ? c->conversation
		       : env->conversation ? env->conversation
					   : env->sender;
		rc = bv_store_history_append(
			s->store, conv, BV_MSG_IN, env->sender,
			(int32_t)env->sender_device, env->message_id,
			env->timestamp_ms, json, json_len, BV_MSG_RECEIVED,
			&sq);
		break;
	case BV_SESSION_MALFORMED:
		rc = store_placeholder(s, env, 1, &r, &sq);
		break;
	case BV_SESSION_DUPLICATE:
		/* libsignal used this key under another id: store nothing. */
		rc = bv_store_rollback(s->store);
		in_tx = 0;
		break;
	default:
		/*
		 * Undo the seen mark (nothing else was written), so that the
		 * resent message with this id is accepted.
		 */
		rc = bv_store_rollback(s->store);
		in_tx = 0;
		if (rc < 0)
			goto out;
		rc = bv_store_begin(s->store);
		if (rc < 0)
			goto out;
		in_tx = 1;
		rc = store_placeholder(s, env, 0, &r, &sq);
		break;
	}
	if (rc < 0)
		goto out;
done:
	if (in_tx) {
		rc = bv_store_commit(s->store);
		if (rc < 0)
			goto out;
		in_tx = 0;
	}
	*result = r;
	if (r == BV_SESSION_OK) {
		*content = c;
		c = NULL;
	}
	if (seq)
		*seq = r == BV_SESSION_DUPLICATE ? -1 : sq;
out:
	if (in_tx)
		bv_store_rollback(s->store);
	if (json)
		bv_wipe(json, json_len);
	bv_free(json);
	bv_content_free(c);
	return rc;
}
