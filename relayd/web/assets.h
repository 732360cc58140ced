/* SPDX-License-Identifier: MIT */
/*
 * assets.h: the dashboard's files (relayd/web/: the page template, its
 * script and its style sheet), built into mq-relayd by the Makefile
 * (relayd/web/embed.sh writes relayd/web/assets.c), so that the page needs
 * nothing installed beside the binary and nothing from the network.
 */
#ifndef RELAYD_WEB_ASSETS_H
#define RELAYD_WEB_ASSETS_H

#include <stddef.h>

struct web_asset {
	const char *name;          /* the file's name in relayd/web/ */
	const char *type;          /* its Content-Type */
	const unsigned char *data;
	size_t len;
};

/* The file of that name, or NULL. */
const struct web_asset *web_asset(const char *name);

#endif
