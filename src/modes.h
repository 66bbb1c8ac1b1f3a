/* modes.h — the TLS mode and the AUTH mechanism an account asks for:
 * the two choices the configuration and the SMTP engine both name. */
#ifndef POSTERN_MODES_H
#define POSTERN_MODES_H

enum tls_mode { TLS_STARTTLS = 0, TLS_IMPLICIT, TLS_OFF };

enum auth_mech {
	AUTH_AUTO = 0,
	AUTH_PLAIN,
	AUTH_LOGIN,
	AUTH_SCRAM_SHA_256,
	AUTH_XOAUTH2,
	AUTH_OAUTHBEARER,
	AUTH_EXTERNAL,
	AUTH_OFF,
};

#endif
