/* "Did you mean ...?": the nearest of a list of known words. */
#ifndef SCEPD_UTIL_SUGGEST_H
#define SCEPD_UTIL_SUGGEST_H

#include <stddef.h>

/* Longest word util_edit_distance compares; longer words are never near. */
#define UTIL_SUGGEST_MAX_WORD 64

/* Levenshtein distance (insertions, deletions, substitutions) between a and
 * b; (size_t)-1 when either is longer than UTIL_SUGGEST_MAX_WORD. */
size_t util_edit_distance(const char *a, const char *b);

/* The candidate word abbreviates when it is the start of exactly one;
 * otherwise the candidate nearest to word, or NULL when none is near enough
 * to be a likely typo: at most 1 edit for words of up to 3 characters, 2 up to 6,
 * 3 beyond. Ties go to the earlier candidate; an exact match is returned
 * as is. The result points into candidates. */
const char *util_suggest(const char *word, const char *const *candidates, size_t count);

#endif
