/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * invite.h: `bvchat enroll --invite CODE`: redeems an invite code at the
 * relay (POST /v1/invites/redeem, docs/protocol.md "Invites") for the
 * ticket that enroll then takes as its token. Plain blocking HTTP/1.1 on
 * the relay's port, as the command-line client speaks plain WebSocket.
 */
#ifndef BV_TOOLS_INVITE_H
#define BV_TOOLS_INVITE_H

#include <stddef.h>

#define INVITE_TICKET_CAP 64 /* "bvi1." and 43 characters, and a NUL */

/*
 * Redeems code (as the person typed it: letters, digits, hyphens and
 * spaces, at most 64 bytes) at host:port, waiting at most timeout_ms.
 * Returns 0 with the ticket in ticket (a secret: wipe it); otherwise -1
 * and a sentence for people in why (the relay's refusal, or what failed).
 */
int invite_redeem(const char *host, int port, const char *code, int timeout_ms,
		  char ticket[INVITE_TICKET_CAP], char *why, size_t whylen);

#endif
