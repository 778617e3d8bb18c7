/* Frames over a bufferevent (chan.h). */
#include "ipc/chan.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>
#include <stdlib.h>
#include <string.h>

struct ipc_chan {
    struct bufferevent *bev;
    ipc_chan_msg_fn on_msg;
    ipc_chan_lost_fn on_lost;
    void *arg;
    bool lost;
};

static void lose(ipc_chan *c, const char *why)
{
    if (c->lost)
        return;
    c->lost = true;
    bufferevent_disable(c->bev, EV_READ);
    c->on_lost(c->arg, why);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    ipc_chan *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (!c->lost) {
        uint8_t word[4];
        if (evbuffer_copyout(in, word, 4) != 4)
            return;
        size_t n = (size_t)word[0] << 24 | (size_t)word[1] << 16 | (size_t)word[2] << 8 | word[3];
        if (n < IPC_HEADER_LEN - 4 || n > IPC_MAX_FRAME) {
            lose(c, "malformed message frame");
            return;
        }
        if (evbuffer_get_length(in) < n + 4)
            return;
        uint8_t *frame = malloc(n + 4);
        if (!frame) {
            lose(c, "out of memory");
            return;
        }
        evbuffer_remove(in, frame, n + 4);
        ipc_msg m;
        util_error err = {0};
        if (ipc_parse(frame, n + 4, &m, &err) != 0) {
            lose(c, err.detail);
            return;
        }
        c->on_msg(c->arg, &m); /* must not free c */
        if (c->lost)
            return;
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    ipc_chan *c = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        lose(c, what & BEV_EVENT_EOF ? "the other process closed the channel" : "channel error");
}

ipc_chan *ipc_chan_new(struct event_base *base, int fd, ipc_chan_msg_fn on_msg, ipc_chan_lost_fn on_lost,
                       void *arg)
{
    ipc_chan *c = calloc(1, sizeof *c);
    if (!c || evutil_make_socket_nonblocking(fd) != 0 ||
        !(c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE))) {
        free(c);
        return NULL;
    }
    c->on_msg = on_msg;
    c->on_lost = on_lost;
    c->arg = arg;
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    if (bufferevent_enable(c->bev, EV_READ) != 0) {
        ipc_chan_free(c);
        return NULL;
    }
    return c;
}

void ipc_chan_free(ipc_chan *c)
{
    if (!c)
        return;
    bufferevent_free(c->bev);
    free(c);
}

int ipc_chan_send(ipc_chan *c, ipc_builder *b)
{
    size_t len = 0;
    uint8_t *frame = ipc_end(b, &len);
    if (!frame)
        return -1;
    int rc = c->lost ? -1 : bufferevent_write(c->bev, frame, len);
    ipc_frame_free(frame, len);
    return rc;
}
