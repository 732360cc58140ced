#include "relayd.h"
int receive_start(struct relayd *r, struct spool_err *e) { (void)r; (void)e; return 0; }
int receive_reload(struct relayd *r, const struct conf *nc, struct spool_err *e) { (void)r; (void)nc; (void)e; return 0; }
void receive_pass(struct relayd *r) { (void)r; }
void receive_stop(struct relayd *r) { (void)r; }
