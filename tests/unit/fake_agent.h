/*
 * A fake of src/agent for the API's tests and fuzzer: every function of
 * agent.h with canned answers, a record of the calls, and failures on
 * demand. Users: admin/admin-password (admin), viewer/viewer-password
 * (viewer). Sessions live in memory.
 */
#ifndef SCEPD_TEST_FAKE_AGENT_H
#define SCEPD_TEST_FAKE_AGENT_H

#include "agent/agent.h"

#define FAKE_SESSIONS 8
#define FAKE_REQUEST_ID 7

typedef struct fake_session {
    bool active;
    char token[64];
    char csrf[65];
    char user[64];
    agent_role role;
} fake_session;

struct agent {
    /* what was called: "agent_x,agent_y" (logins and session checks are counted apart) */
    char calls[512];
    int logins;
    int session_checks;
    char last_user[64]; /* the user/by argument of the last call that has one */
    char last_name[64]; /* key, function or user name argument */
    int64_t last_id;
    int last_limit;
    agent_role last_role;
    char last_password[128];
    json_t *last_in; /* copy of the last JSON input */
    /* failure injection: the call named fail_call fails with fail_code */
    char fail_call[48];
    util_err fail_code;
    char fail_detail[256];
    bool throttled; /* agent_login answers THROTTLED */
    /* agent_login_start: with defer_logins the answer is held until
     * fake_agent_release_login (one at a time); login_busy answers
     * LOGIN_BUSY; without either it answers at once like agent_login. */
    bool defer_logins;
    bool login_busy;
    agent_login_job *held;
    void (*held_done)(void *arg);
    void *held_arg;
    int login_cancels;
    /* agent_key_verify_start: with defer_verify the verification waits
     * until fake_agent_release_verify (one at a time). */
    bool defer_verify;
    agent_crl_waiter *held_verify;
    void (*verify_done)(void *arg);
    void *verify_arg;
    int verify_cancels;
    int sessions_made;
    fake_session sessions[FAKE_SESSIONS];
};

agent *fake_agent_create(void);
void fake_agent_fail(agent *a, const char *call, util_err code, const char *detail);
/* Forgets the calls and the injected failure (sessions stay). */
void fake_agent_reset(agent *a);
/* Calls the held verification's done callback; false when none is held. */
bool fake_agent_release_verify(agent *a);
/* Calls the held login's done callback; false when none is held. */
bool fake_agent_release_login(agent *a);

#endif
