/*
 * The store's schema as an ordered list of migrations. Migration i moves the
 * database from schema version i to i + 1; store_open applies the missing
 * ones, each in its own transaction together with the new schema_version.
 * Never edit a released migration: append a new one and raise
 * STORE_SCHEMA_VERSION.
 */
#include "store/store_internal.h"

const char *const store_migrations[STORE_SCHEMA_VERSION] = {
    /* 0 -> 1: the initial schema. */
    "CREATE TABLE docs ("
    " name TEXT PRIMARY KEY CHECK (name <> ''),"
    " json TEXT NOT NULL,"
    " updated_at INTEGER NOT NULL);"

    "CREATE TABLE requests ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " kind TEXT NOT NULL CHECK (kind IN ('manual', 'auto')),"
    " state TEXT NOT NULL CHECK (state IN ('queued', 'generating_key', 'contacting_server',"
    "  'sent', 'pending', 'acquired', 'registered', 'failed')),"
    " key_name TEXT NOT NULL,"
    " params TEXT,"
    " challenge_sealed BLOB,"
    " transaction_id TEXT NOT NULL DEFAULT '',"
    " key_pem TEXT,"
    " signer_cert_pem TEXT,"
    " signer_key_pem TEXT,"
    " server TEXT,"
    " attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),"
    " next_attempt_at INTEGER NOT NULL DEFAULT 0,"
    " error_code TEXT NOT NULL DEFAULT '',"
    " error_detail TEXT NOT NULL DEFAULT '',"
    " replaces TEXT NOT NULL DEFAULT '',"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL);"
    "CREATE INDEX requests_state ON requests (state);"

    /* Every stored pair has its certificate: an acquired key is one whose
     * certificate has arrived. request_id is NULL for keys not from a
     * request (the initial TLS key). */
    "CREATE TABLE keys ("
    " name TEXT PRIMARY KEY CHECK (name <> ''),"
    " state TEXT NOT NULL CHECK (state IN ('acquired', 'registered')),"
    " key_pem TEXT NOT NULL CHECK (key_pem <> ''),"
    " cert_pem TEXT NOT NULL CHECK (cert_pem <> ''),"
    " chain_pem TEXT NOT NULL DEFAULT '',"
    " request_id INTEGER REFERENCES requests (id) ON DELETE RESTRICT,"
    " replaces TEXT NOT NULL DEFAULT '',"
    " created_at INTEGER NOT NULL,"
    " registered_at INTEGER NOT NULL DEFAULT 0,"
    " CHECK (state <> 'registered' OR length(cert_pem) > 0));"
    "CREATE INDEX keys_request ON keys (request_id);"

    /* key_name NULL: the function exists but is unbound. RESTRICT: a bound
     * key cannot be deleted, and a key name cannot change under a binding. */
    "CREATE TABLE bindings ("
    " function TEXT PRIMARY KEY CHECK (function <> ''),"
    " key_name TEXT REFERENCES keys (name) ON DELETE RESTRICT ON UPDATE RESTRICT"
    "  CHECK (key_name IS NULL OR key_name <> ''));"
    "CREATE INDEX bindings_key ON bindings (key_name);"

    "CREATE TABLE ca_certs ("
    " position INTEGER PRIMARY KEY,"
    " pem TEXT NOT NULL CHECK (pem <> ''),"
    " role TEXT NOT NULL,"
    " fetched_at INTEGER NOT NULL);"

    "CREATE TABLE users ("
    " name TEXT PRIMARY KEY CHECK (name <> ''),"
    " role TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),"
    " password_hash TEXT NOT NULL CHECK (password_hash <> ''),"
    " failed_logins INTEGER NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),"
    " locked_until INTEGER NOT NULL DEFAULT 0,"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL);"

    "CREATE TABLE sessions ("
    " token_hash TEXT PRIMARY KEY CHECK (token_hash <> ''),"
    " user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE ON UPDATE CASCADE,"
    " csrf TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " last_seen INTEGER NOT NULL);"
    "CREATE INDEX sessions_user ON sessions (user);"
    "CREATE INDEX sessions_last_seen ON sessions (last_seen);"

    "CREATE TABLE audit ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " at INTEGER NOT NULL,"
    " user TEXT NOT NULL,"
    " action TEXT NOT NULL CHECK (action <> ''),"
    " detail TEXT NOT NULL);",

    /* 1 -> 2: the state 'cancelled' for requests. Widening a CHECK does not
     * change what is stored, so the table's definition is edited in place
     * (https://sqlite.org/lang_altertable.html, "making other kinds of
     * table schema changes"): rebuilding the table is not possible while
     * keys.request_id refers to it with ON DELETE RESTRICT. The table
     * created and dropped after the reset raises the schema cookie, so that
     * other connections read the schema again. */
    "PRAGMA writable_schema = ON;"
    "UPDATE sqlite_schema SET sql = replace(sql, '''registered'', ''failed''))',"
    " '''registered'', ''failed'', ''cancelled''))') WHERE type = 'table' AND name = 'requests';"
    "PRAGMA writable_schema = RESET;"
    "CREATE TABLE migration_2 (x);"
    "DROP TABLE migration_2;",

    /* 2 -> 3: private keys are sealed (src/crypto/seal.h). The columns keep
     * their names and now hold sealed text. An ended request needs no key:
     * its copies are dropped here; every other clear key is sealed by the
     * code step of this migration (store.c, seal_migration), in the same
     * transaction. */
    ("UPDATE requests SET key_pem = NULL, signer_key_pem = NULL"
     " WHERE state IN ('registered', 'failed', 'cancelled');"),
    /* 3 -> 4: where a key's private key lives. "tpm2": key_pem is the
     * sealed TSS2 blob of a key inside the TPM, usable only with that TPM. */
    ("ALTER TABLE keys ADD COLUMN storage TEXT NOT NULL DEFAULT 'software'"
     " CHECK (storage IN ('software', 'tpm2'));"),
};
