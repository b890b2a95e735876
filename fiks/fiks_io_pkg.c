/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fiks_io_pkg.c: FIKS IO messages with packages (fiks_io.h): fiks_send,
 * fiks_reply and fiks_open glue fiks_asice and fiks_cms to the transport
 * of fiks_io.c. Apart from it so that a program that only moves raw
 * bodies does not link the package code.
 */
#include <stdlib.h>
#include <string.h>

#include "bv_error.h"
#include "bv_util.h"
#include "fiks_asice.h"
#include "fiks_cms.h"
#include "fiks_error.h"
#include "fiks_identity.h"
#include "fiks_io.h"

int
fiks_send(struct fiks_client *c, const struct fiks_send_req *req,
	  const struct fiks_file *files, size_t n,
	  const char *recipient_cert_pem, char melding_id[FIKS_UUID_LEN + 1])
{
	const struct fiks_config *cfg;
	struct fiks_identity *signer = NULL;
	unsigned char *zip = NULL, *enc = NULL;
	size_t zip_len = 0, enc_len = 0;
	char *pem = NULL;
	int rc;

	if (!c || !req || (n && !files))
		return BV_EINVAL;
	if (n == 0)
		return fiks_send_raw(c, req, NULL, 0, melding_id);
	cfg = fiks_client_config(c);
	rc = fiks_identity_load(
		cfg->sign_key_path ? cfg->sign_key_path : cfg->key_path,
		cfg->sign_cert_path ? cfg->sign_cert_path : cfg->cert_path,
		&signer);
	if (rc < 0)
		goto out;
	if (!recipient_cert_pem) {
		rc = fiks_katalog_cert(c, req->mottaker, &pem);
		if (rc < 0)
			goto out;
		recipient_cert_pem = pem;
	}
	rc = fiks_asice_build(files, n, signer, &zip, &zip_len);
	if (rc < 0)
		goto out;
	rc = fiks_cms_encrypt(zip, zip_len, recipient_cert_pem,
			      strlen(recipient_cert_pem), &enc, &enc_len);
	if (rc < 0)
		goto out;
	rc = fiks_send_raw(c, req, enc, enc_len, melding_id);
out:
	if (zip) {
		bv_wipe(zip, zip_len);
		free(zip);
	}
	free(enc);
	free(pem);
	fiks_identity_free(signer);
	return rc;
}

int
fiks_reply(struct fiks_client *c, const struct fiks_melding *m,
	   const char *type, const struct fiks_file *files, size_t n,
	   const char *klient_melding_id, char melding_id[FIKS_UUID_LEN + 1])
{
	struct fiks_send_req req;

	if (!c || !m || !type)
		return BV_EINVAL;
	memset(&req, 0, sizeof(req));
	req.mottaker = m->avsender;
	req.type = type;
	req.svar_paa = m->melding_id;
	req.klient_melding_id = klient_melding_id;
	req.klient_korrelasjons_id =
		m->klient_korrelasjons_id[0] ? m->klient_korrelasjons_id : NULL;
	return fiks_send(c, &req, files, n, NULL, melding_id);
}

int
fiks_open(struct fiks_client *c, const struct fiks_melding *m,
	  const char *expect_cert_pem, struct fiks_asice **out, char *err,
	  size_t errcap)
{
	const struct fiks_config *cfg;
	struct fiks_identity *me = NULL;
	unsigned char *dl = NULL, *zip = NULL;
	const unsigned char *ct;
	size_t dl_len = 0, ct_len, zip_len = 0;
	int rc;

	if (err && errcap)
		err[0] = '\0';
	if (!c || !m || !out)
		return BV_EINVAL;
	if (m->dokumentlager_id[0]) {
		rc = fiks_dokumentlager_get(c, m->dokumentlager_id, &dl,
					    &dl_len);
		if (rc < 0)
			return rc;
		ct = dl;
		ct_len = dl_len;
	} else {
		ct = m->body;
		ct_len = m->body_len;
	}
	if (ct_len == 0) {
		rc = BV_EINVAL;
		goto out;
	}
	cfg = fiks_client_config(c);
	rc = fiks_identity_load(cfg->key_path, cfg->cert_path, &me);
	if (rc < 0)
		goto out;
	rc = fiks_cms_decrypt(ct, ct_len, me, &zip, &zip_len);
	if (rc < 0)
		goto out;
	rc = fiks_asice_read(zip, zip_len, expect_cert_pem, out, err, errcap);
out:
	if (zip) {
		bv_wipe(zip, zip_len);
		free(zip);
	}
	bv_free(dl);
	fiks_identity_free(me);
	return rc;
}
