/* Temporary directories for the unit tests (no dependency beyond libc and cmocka). */
#ifndef SCEPD_TESTS_TEMPDIR_H
#define SCEPD_TESTS_TEMPDIR_H

/* A fresh directory under $TMPDIR or /tmp (free() the path, h_rmtree() the dir). */
char *h_tempdir(void);
/* Removes the directory and everything below it; accepts NULL. */
void h_rmtree(const char *dir);

#endif
