/* A message channel on an event loop: frames (ipc.h) in and out of a
 * socketpair through a bufferevent. */
#ifndef SCEPD_IPC_CHAN_H
#define SCEPD_IPC_CHAN_H

#include "ipc/ipc.h"

struct event_base;
typedef struct ipc_chan ipc_chan;

/* m is the callback's: it clears it. */
typedef void (*ipc_chan_msg_fn)(void *arg, ipc_msg *m);
/* The peer closed the channel or sent a frame that breaks the protocol;
 * nothing more is read. */
typedef void (*ipc_chan_lost_fn)(void *arg, const char *why);

/* Takes fd (made non-blocking, closed by ipc_chan_free). */
ipc_chan *ipc_chan_new(struct event_base *base, int fd, ipc_chan_msg_fn on_msg, ipc_chan_lost_fn on_lost,
                       void *arg);
void ipc_chan_free(ipc_chan *c);
/* Ends the builder's frame and queues it; -1 when it cannot be framed. */
int ipc_chan_send(ipc_chan *c, ipc_builder *b) MUST_CHECK;

#endif
