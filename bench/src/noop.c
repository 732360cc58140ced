/* SPDX-License-Identifier: MIT */
/* copied from shared/peers/src (this project's shared benchmark material) */
/* noop.c - does nothing: the floor cost of one process per message. */
int main(void) { return 0; }
