#include "util/suggest.h"

#include <string.h>

size_t util_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > UTIL_SUGGEST_MAX_WORD || lb > UTIL_SUGGEST_MAX_WORD)
        return (size_t)-1;
    /* one row of the dynamic-programming table; the words are short */
    size_t row[UTIL_SUGGEST_MAX_WORD + 1];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t above = row[j];
            size_t best = diagonal + (a[i - 1] != b[j - 1]);
            if (above + 1 < best)
                best = above + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diagonal = above;
        }
    }
    return row[lb];
}

const char *util_suggest(const char *word, const char *const *candidates, size_t count)
{
    if (!word || !*word)
        return NULL;
    size_t len = strlen(word);
    /* an abbreviation: the one candidate the word begins */
    const char *prefix_of = NULL;
    size_t prefixes = 0;
    for (size_t i = 0; i < count; i++)
        if (candidates[i] && !strncmp(candidates[i], word, len) && prefixes++ == 0)
            prefix_of = candidates[i];
    if (prefixes == 1)
        return prefix_of;
    size_t limit = len <= 3 ? 1 : len <= 6 ? 2 : 3;
    const char *best = NULL;
    size_t best_distance = limit + 1;
    for (size_t i = 0; i < count; i++) {
        if (!candidates[i])
            continue;
        size_t d = util_edit_distance(word, candidates[i]);
        if (d < best_distance) {
            best = candidates[i];
            best_distance = d;
        }
    }
    return best;
}
