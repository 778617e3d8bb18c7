/*
 * The fixed fixture of the fuzz targets: a test-only RSA key and its
 * self-signed certificate (CA, KU digitalSignature+keyEncipherment). It is
 * public on purpose, so that seeds made by make_seeds.c are signed by and
 * encrypted to it and the targets reach signature checks, decryption and
 * the CertRep content. Never use it for anything else.
 */
#ifndef SCEPD_FUZZ_FIXTURE_H
#define SCEPD_FUZZ_FIXTURE_H

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>

#define FUZZ_TID "FUZZ-TRANSACTION-0001"
static const unsigned char FUZZ_NONCE[16] = "scepd fuzz nonce";

static const char FUZZ_KEY_PEM[] = "-----BEGIN PRIVATE KEY-----\n"
                                   "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDKi+WUUPe8gxCm\n"
                                   "x+PXTj/mG9kELDuC2DtmxDKs23kkxbr3uxfBV/EdqGuVbuVyTtuorqMG5OCmhXHf\n"
                                   "jXvvL7fUlIDoOzOW4u6AMS3s8PVrEdpE6ccRg6ujdc6zMbALTKGZjUlkFknvxVtr\n"
                                   "Yy74ntRa43iKxiD+yvcxu5sLebU2uewy19U68SOmTbRly4EWajsySqe/L5rXw9/Q\n"
                                   "S5+luRmm68tZ+Qp3NdAoBRMDHqiozfRBgGePmiJXuTB51cjew+VquIKS8/7sKZG0\n"
                                   "TmaV/LSCQV2g/hBJ1H9zaw6WaSMowJoKulnxEQ7dFhii8eIxJkfsdbtRszr7KZbO\n"
                                   "dpkinH5nAgMBAAECggEAB34Yq7LkZy8mAjVqF+syG+4IdMoPbYNYNzCnez4nLhVj\n"
                                   "xDRB6F9mG6XA97yBdQgLwiKrrzPvnNlaNrMs1CfyEfATEK7X9WCcWAD5ukZznawB\n"
                                   "ugONNKL9ShpaihsaxbWQ/iAm3d1L4OMZGFDen53TLIWLo6k5S+jwL1Z0TClgFbpx\n"
                                   "dFr0ZEYkvNJ5PL+6GWTTU7cX2brH/HgbWnacmupIAPij4BfnWQZ038XVZtk0F1oQ\n"
                                   "k9IKLJhfXWeKUCWMzBYLMkzR1mXfvmSAxadNRFcmIwvQ45DiHXbbeIKpdybMuZnQ\n"
                                   "v/NhKxOcAYPilT7YwkxHU9fmVkFIsIHEXAz0h499uQKBgQDlsCmIgZ11qTOTeeSc\n"
                                   "s0ma9RiaOONtIYbAAjkrb/n2KM4Qc7JxBU3nxIx2Ygj5kELNB4j1nKuxPgUL1YoA\n"
                                   "RVQhtSeTvXeudcizIvHW/MDmwEnEwuRICJmNWp7WBMhU9bKXcj3gZq3boEc6E9D1\n"
                                   "ynPJqDywkbLP0sCRppgNS8iP+wKBgQDhv8cbNd+p38JfPB+c/dVmj8wy0ZdblaKM\n"
                                   "5VeTsTxQTyDYAHOkbzdcoCY6fmKieKeZ6nU+6gnvqcgqcoogWleWnl5WgZo33ZcO\n"
                                   "2AhfxCHP2VgVZTehE8GobCJazToJ0aNbNyXxoCDpjbTG20nS5uwMI7XfZ3JTztoO\n"
                                   "pLiTdUFDhQKBgQCc2m+SlAlGt7TMCprPVDR4yNXzQ9Qzy4htCVenTUHjE7ydSZVb\n"
                                   "T2cDVpshoRNF8nlb8MBcEpDBanwht8MVKkMo/cA4SVQ45KCZjMygp1zIeBoob3tb\n"
                                   "odvSx0bfGscAFgXPHKoa26Pw7wSVKcEyiP4HgYdogScee2scTCtcMRuXDwKBgEvC\n"
                                   "uqVNHTS7XVXsrYdYQIfc9mCPqkYYH6c9SHjOYDlrdNBIxoaGtIOnU20KATwZVdX3\n"
                                   "s0Vb8d22kvB75BMbfo2TtIE/mWvqN8nJgnXxMo+4lzEG+PZb1QAa2iSy/ylQa4wv\n"
                                   "I9LFNIZtAiBCc7INwWYJjf3dj6bEorWLXk5OaYqpAoGATv9UEvcvIzm+cd2WkEt0\n"
                                   "K/TgX3QtwXMVt1d0cJibELTHMct44y0Qz65vJdaFGhUFQF4j7dZGwih3Gcg0JGkI\n"
                                   "j9TMoOmp/0hWEYXw7Q7F1m44ly9fQWYUsj/nLfK6PopjzTfe2atSJLRXjaukN/88\n"
                                   "zItJ5CaQxrDIaBOAkHA/i5M=\n"
                                   "-----END PRIVATE KEY-----\n";

static const char FUZZ_CERT_PEM[] = "-----BEGIN CERTIFICATE-----\n"
                                    "MIIDazCCAlOgAwIBAgIUJqJF5hIkl8IsI8YRy+1H5sPYfGgwDQYJKoZIhvcNAQEL\n"
                                    "BQAwPDEWMBQGA1UECgwNc2NlcGQgZnV6emluZzEiMCAGA1UEAwwZZnV6eiBmaXh0\n"
                                    "dXJlIChub3Qgc2VjcmV0KTAgFw0yNjExMjUwODA1NTRaGA8yMTI2MTEwMTA4MDU1\n"
                                    "NFowPDEWMBQGA1UECgwNc2NlcGQgZnV6emluZzEiMCAGA1UEAwwZZnV6eiBmaXh0\n"
                                    "dXJlIChub3Qgc2VjcmV0KTCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEB\n"
                                    "AMqL5ZRQ97yDEKbH49dOP+Yb2QQsO4LYO2bEMqzbeSTFuve7F8FX8R2oa5Vu5XJO\n"
                                    "26iuowbk4KaFcd+Ne+8vt9SUgOg7M5bi7oAxLezw9WsR2kTpxxGDq6N1zrMxsAtM\n"
                                    "oZmNSWQWSe/FW2tjLvie1FrjeIrGIP7K9zG7mwt5tTa57DLX1TrxI6ZNtGXLgRZq\n"
                                    "OzJKp78vmtfD39BLn6W5Gabry1n5Cnc10CgFEwMeqKjN9EGAZ4+aIle5MHnVyN7D\n"
                                    "5Wq4gpLz/uwpkbROZpX8tIJBXaD+EEnUf3NrDpZpIyjAmgq6WfERDt0WGKLx4jEm\n"
                                    "R+x1u1GzOvspls52mSKcfmcCAwEAAaNjMGEwHQYDVR0OBBYEFK0gl6dez/6o64JC\n"
                                    "468xlfqrMQrPMB8GA1UdIwQYMBaAFK0gl6dez/6o64JC468xlfqrMQrPMA4GA1Ud\n"
                                    "DwEB/wQEAwIFoDAPBgNVHRMBAf8EBTADAQH/MA0GCSqGSIb3DQEBCwUAA4IBAQDF\n"
                                    "4KimQDMBFUhQe+eTP6g0LcfWA/XoU+g+8yZOAEd8F8GlFwF4nZ1TZMU1hsq4hiZG\n"
                                    "Nujlu0/HqvC6ZwrILGZvuKAV2uhE8aCeTMZKNpO3QyGSqXkVRIJpy2nj9ZeGc50v\n"
                                    "hUyKcyoek07EB0XW02ShC+i+3/0X4oOaLIIq57jZ19iIteztMZlQzJjiV7w9NJlZ\n"
                                    "m0LyFfZnrqHRA/enYLSyqdQKX8xQSsgdl9Q3Mht/zD9OaBcwBDYrEgsbGoqfeCcl\n"
                                    "OGTnT1dENKK5XU/CHGNQ1yuzegaT0Nt1TVnLrRiTnYPSEDX3cyvIt4ElVCZ7lcEO\n"
                                    "iaufm500lr+KSTU24B+J\n"
                                    "-----END CERTIFICATE-----\n";

/* Loads the fixture once per process; aborts if it cannot (a build error). */
static void fuzz_fixture_load(X509 **cert, EVP_PKEY **key)
{
    BIO *b = BIO_new_mem_buf(FUZZ_KEY_PEM, -1);
    *key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    b = BIO_new_mem_buf(FUZZ_CERT_PEM, -1);
    *cert = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!*key || !*cert)
        abort();
}

#endif
