/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * migrate.h: the forward-only schema migrations in migrations/, compiled
 * into the relay (generated migrations_data.c), applied by --migrate and
 * checked at start-up. Both calls block: they run before the event loop.
 */
#ifndef BV_RELAY_MIGRATE_H
#define BV_RELAY_MIGRATE_H

#include <stddef.h>

struct migration {
	int version;	  /* NNNN of NNNN_verb_noun.sql */
	const char *name; /* file name */
	const char *sql;
};

extern const struct migration bv_migrations[];
extern const size_t bv_migrations_count;

/*
 * Applies every migration newer than the database's, each in its own
 * transaction recorded in schema_migrations (created if missing), under an
 * advisory lock so two relays migrating at once do not race. Returns 0,
 * BV_EUNAVAILABLE (cannot connect), BV_ECONFIG (database is newer than this
 * relay), BV_EINTERNAL (a migration failed; it was rolled back).
 */
int migrate_apply(const char *conninfo);

/*
 * Returns 0 when the database's schema is exactly the newest this relay
 * knows; BV_ECONFIG (logged: not migrated, older, or unknown newer schema);
 * BV_EUNAVAILABLE.
 */
int migrate_check(const char *conninfo);

#endif
