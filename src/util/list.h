/* Doubly linked lists whose nodes have prev and next: add at the head, take
 * out anywhere. */
#ifndef SCEPD_UTIL_LIST_H
#define SCEPD_UTIL_LIST_H

#define UTIL_LINK(head, n)                                                                                   \
    do {                                                                                                     \
        (n)->prev = NULL;                                                                                    \
        (n)->next = (head);                                                                                  \
        if (head)                                                                                            \
            (head)->prev = (n);                                                                              \
        (head) = (n);                                                                                        \
    } while (0)
#define UTIL_UNLINK(head, n)                                                                                 \
    do {                                                                                                     \
        if ((n)->prev)                                                                                       \
            (n)->prev->next = (n)->next;                                                                     \
        else                                                                                                 \
            (head) = (n)->next;                                                                              \
        if ((n)->next)                                                                                       \
            (n)->next->prev = (n)->prev;                                                                     \
    } while (0)

#endif
