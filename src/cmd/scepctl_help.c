/* scepctl COMMAND --help: each option a command's usage line names, with
 * what it does and its default, then the transport options. */
#include <stdio.h>
#include <string.h>

#include "cmd/scepctl.h"
#include "util/suggest.h"

static const struct option_help {
    const char *name;
    const char *form;
    const char *text;
} option_help[] = {
    {"url", "-u, --url URL", "SCEP server URL. Required."},
    {"ca-ident", "-i, --ca-ident IDENT", "CA identifier sent with GetCACaps and GetCACert. Default: none."},
    {"out", "-o, --out FILE", "file to write. Required; an existing file is kept unless --force."},
    {"ca-fingerprint", "--ca-fingerprint sha256:HEX",
     "accept only the CA with this SHA-256 fingerprint. Default: none (the CA is not pinned)."},
    {"cn", "--cn CN", "common name of the subject. Required unless --subject is given."},
    {"org", "--org O", "organization of the subject. Default: none."},
    {"subject", "--subject DN",
     "the whole subject, e.g. CN=printer1,O=Example. Default: from --cn and --org."},
    {"email", "--email E", "e-mail address in the subject. Default: none."},
    {"san", "--san TYPE:VALUE", "alternative name dns:, ip:, email: or uri:; repeatable. Default: none."},
    {"challenge", "--challenge PW", "challenge password (visible in the process list). Default: none."},
    {"challenge-file", "--challenge-file F", "read the challenge password from F. Default: none."},
    {"key-type", "--key-type T",
     "key to generate: rsa:1024, rsa:2048, rsa:3072, rsa:4096, ec:P-256 or ec:P-384. Default: rsa:2048."},
    {"key-storage", "--key-storage S",
     "where a generated key lives: software, or tpm2 (inside the TPM; --key-out then gets the TSS2 key "
     "file, usable only with that TPM; rsa:2048 or ec:P-256). Default: software."},
    {"tpm-tcti", "--tpm-tcti TCTI",
     "how the TPM is reached, e.g. device:/dev/tpmrm0 or swtpm:path=/run/swtpm/sock. Default: "
     "$TPM2OPENSSL_TCTI, else the tpm2 provider's default."},
    {"key", "--key FILE",
     "existing private key (PEM or DER, or a TSS2 key file of a key in the TPM): enroll uses it instead "
     "of generating one (default: generate); renew, getcert and getcrl sign with it (required); inspect "
     "opens envelopes with it (default: none)."},
    {"cert", "--cert FILE", "the current certificate. Required."},
    {"digest", "--digest NAME",
     "sha512, sha384, sha256 or sha1. Default: the strongest the server's capabilities allow."},
    {"cipher", "--cipher NAME", "aes, aes256 or des3. Default: aes when the server lists AES, else des3."},
    {"key-usage", "--key-usage U",
     "none, digitalSignature, keyEncipherment or both. Default: both for RSA, digitalSignature for EC."},
    {"eku", "--eku OID", "extended key usage (OID, serverAuth, clientAuth); repeatable. Default: none."},
    {"template", "--template NAME", "Microsoft certificate template name. Default: none."},
    {"method", "--method M",
     "auto, get or post for PKIOperation. Default: auto (POST when listed, else GET)."},
    {"poll-interval", "--poll-interval S", "seconds between polls while pending, 1 to 86400. Default: 60."},
    {"poll-count", "--poll-count N",
     "polls before giving up with exit 3, 0 to 100000. Default: 0 (exit 3 at once when pending)."},
    {"state", "--state FILE",
     "where a pending request is saved (enroll, renew) or read (poll). Default: NAME.state next to "
     "--key-out (enroll, renew); required for poll."},
    {"key-out", "--key-out FILE", "write the private key here (mode 0600). Required; kept unless --force."},
    {"cert-out", "--cert-out FILE", "write the issued certificate here. Required; kept unless --force."},
    {"chain-out", "--chain-out FILE", "write the CA chain here. Default: not written."},
    {"new-key-type", "--new-key-type T", "type of the new key. Default: the type of the current key."},
    {"reuse-key", "--reuse-key", "keep the current key. Default: a new key is generated."},
    {"mode", "--mode M", "auto, renewalreq or pkcsreq. Default: auto."},
    {"serial", "--serial N", "serial number, hex (4BCB8D, 0x4BCB8D or 4b:cb:8d). Required."},
    {"decimal", "--decimal", "read --serial as decimal. Default: hex."},
    {"signer", "--signer CERT.pem",
     "verify the message's signature with this certificate. Default: not checked."},
    {"signer-key", "--signer-key KEY.pem",
     "sign the request with this key and a self-signed certificate for it. Default: the new key, or a "
     "temporary RSA-2048 key when the new key is EC and the server cannot answer an EC signer."},
    {"markdown", "--markdown", "print the catalogue as a Markdown table. Default: one line per code."},
    {"force", "--force", "replace existing output files. Default: refuse to overwrite them (exit 2)."},
    {"tls-ca", "--tls-ca FILE", "CA certificates for an HTTPS server. Default: the system's trust store."},
    {"tls-pin", "--tls-pin sha256:HEX", "accept only an HTTPS server with this certificate. Default: none."},
    {"tls-pin-no-host-check", "--tls-pin-no-host-check",
     "with --tls-pin, do not check the URL's host name against the certificate. Default: checked."},
    {"insecure", "--insecure", "do not verify the HTTPS server's certificate. Default: verify it."},
    {"proxy", "--proxy URL",
     "HTTP proxy, http://user:password@host:port. Default: none (libcurl's variables)."},
    {"connect-timeout", "--connect-timeout S", "connection timeout, 1 to 3600 seconds. Default: 10."},
    {"timeout", "--timeout S", "timeout of each HTTP exchange, 1 to 3600 seconds. Default: 60."},
    {"max-response", "--max-response BYTES", "largest reply accepted, 1024 to 1073741824. Default: 1048576."},
    {"verbose", "-v, --verbose", "report the server, the choices made and each exchange. Default: quiet."},
    {"version", "--version", "print the version and exit."},
    {"help", "-h, --help", "print this help and exit."},
};

static const char *const transport_options[] = {"tls-ca",   "tls-pin",      "tls-pin-no-host-check",
                                                "insecure", "proxy",        "connect-timeout",
                                                "timeout",  "max-response", "verbose"};

static void help_line(const char *name, const char **printed, size_t *count)
{
    for (size_t i = 0; i < *count; i++)
        if (!strcmp(printed[i], name))
            return;
    for (size_t i = 0; i < sizeof option_help / sizeof option_help[0]; i++)
        if (!strcmp(option_help[i].name, name)) {
            printf("  %-30s %s\n", option_help[i].form, option_help[i].text);
            printed[(*count)++] = option_help[i].name;
            return;
        }
}

/* The options a usage line names: "--name" and the short -u, -i, -o. */
void scepctl_command_help(const char *usage, bool network)
{
    const char *printed[sizeof option_help / sizeof option_help[0]];
    size_t count = 0;
    printf("usage: scepctl %s\n\noptions:\n", usage);
    for (const char *p = usage; (p = strchr(p, '-')) != NULL;) {
        if (p > usage && p[-1] != ' ' && p[-1] != '[' && p[-1] != '|') {
            p++;
            continue;
        }
        char name[UTIL_SUGGEST_MAX_WORD + 1];
        if (p[1] == '-') {
            size_t n = strspn(p + 2, "abcdefghijklmnopqrstuvwxyz-");
            snprintf(name, sizeof name, "%.*s", (int)n, p + 2);
            p += 2 + n;
        } else {
            const char *full = p[1] == 'u' ? "url" : p[1] == 'i' ? "ca-ident" : p[1] == 'o' ? "out" : "";
            snprintf(name, sizeof name, "%s", full);
            p += 2;
        }
        help_line(name, printed, &count);
    }
    for (size_t i = 0; network && i < sizeof transport_options / sizeof transport_options[0]; i++)
        help_line(transport_options[i], printed, &count);
    help_line("version", printed, &count);
    help_line("help", printed, &count);
}
