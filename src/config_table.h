/* config_table.h - THE definition of every tern setting: name, type, default, help.
 *
 * This is the single source of truth.  config.c builds the parser and the
 * struct config fields from it; `ternd --config-doc` prints docs/CONFIG.md from
 * it and a test fails when the committed docs differ.  Defaults may refer to
 * other settings as $name; they are expanded after the file is read.
 *
 * CFG(name, TYPE, default, help)
 *   STR   string (may be empty)
 *   INT   non-negative integer
 *   SIZE  byte count, optional k/m/g suffix (powers of 1024)
 *   TIME  seconds, optional s/m/h/d/w suffix
 *   BOOL  yes/no (also true/false, on/off, 1/0)
 *   LIST  comma and/or white-space separated list (stored as one string)
 */
CFG(myhostname, STR, "",
    "The fully qualified name of this host, used in the greeting, HELO/EHLO of outgoing mail, "
    "Received: headers and logs. Empty: the name from gethostname() (no DNS lookup).")
CFG(mydomain, STR, "",
    "The domain of this host. Empty: $myhostname without its first label.")
CFG(myorigin, STR, "",
    "The domain appended to unqualified addresses of locally posted mail. Empty: the contents of "
    "/etc/mailname if present, otherwise $myhostname.")
CFG(mydestination, LIST, "$myhostname, localhost.$mydomain, localhost",
    "Domains this host is the final destination for; their recipients are delivered locally.")
CFG(mynetworks, LIST, "127.0.0.0/8, [::1]/128",
    "Client networks (CIDR, IPv4 or [IPv6]) allowed to relay mail to any destination.")
CFG(smtp_listen, LIST, "0.0.0.0:25",
    "Addresses of the port-25 SMTP service, as host:port or [ipv6]:port, separated by commas.")
CFG(smtpd_peername_lookup, BOOL, "yes",
    "Look up the client's host name (PTR, confirmed by a forward A/AAAA lookup) for logs and "
    "Received: headers. Otherwise clients are \"unknown\".")
CFG(dns_nameservers, LIST, "",
    "DNS servers (ip or ip:port) for tern's own lookups. Empty: those of /etc/resolv.conf.")
CFG(smtpd_banner, STR, "$myhostname ESMTP tern",
    "The text after 220 in the greeting. It must begin with $myhostname (RFC 5321 4.3.1).")
CFG(message_size_limit, SIZE, "10240000",
    "Largest message accepted, in bytes, including headers; advertised as SIZE. 0: no limit.")
CFG(smtpd_recipient_limit, INT, "1000",
    "Most recipients accepted in one transaction (at least 100 per RFC 5321); beyond: 452 4.5.3.")
CFG(smtpd_timeout, TIME, "300s",
    "How long the server waits for a client command or data before it says 421 and hangs up.")
CFG(smtpd_hard_error_limit, INT, "20",
    "Errors (replies 4xx/5xx to the client) after which the session ends with 421 4.7.0.")
CFG(smtpd_session_limit, INT, "10000",
    "Most simultaneous SMTP sessions; clients beyond it get 421 4.3.2 and are disconnected.")
CFG(hopcount_limit, INT, "50",
    "Most Received: headers a message may have (counting the one tern adds); one with more is "
    "rejected at the end of DATA with 554 5.4.6: it is looping between servers.")
CFG(smtpd_max_line_length, INT, "1000",
    "Longest message text line accepted in DATA/BDAT, in octets including CRLF (RFC 5321: 1000). "
    "A message with a longer line is read to its end and rejected with 550 5.6.0.")
CFG(strict_rfc821_envelopes, BOOL, "no",
    "Require MAIL FROM/RCPT TO addresses in angle brackets with no space after the colon.")
CFG(smtpd_helo_required, BOOL, "no",
    "Require HELO or EHLO before MAIL FROM.")
CFG(disable_vrfy_command, BOOL, "no",
    "Answer VRFY with 502 instead of 252. VRFY never reveals whether a user exists.")
CFG(smtpd_expn_enable, BOOL, "no",
    "Allow EXPN (alias expansion) for clients in $mynetworks. Otherwise EXPN answers 502.")
CFG(smtputf8_enable, BOOL, "yes",
    "Offer SMTPUTF8 (RFC 6531) and accept UTF-8 addresses in transactions that ask for it.")
CFG(submission_listen, LIST, "",
    "Addresses of the submission service (RFC 6409, port 587): STARTTLS offered, AUTH required "
    "before MAIL. Empty: none.")
CFG(smtps_listen, LIST, "",
    "Addresses of the submission service with implicit TLS (RFC 8314, port 465). Empty: none.")
CFG(smtpd_tls_cert_file, STR, "",
    "PEM certificate chain (server certificate first) for STARTTLS and implicit TLS. Empty: no "
    "TLS. Reloaded on SIGHUP.")
CFG(smtpd_tls_key_file, STR, "$smtpd_tls_cert_file",
    "PEM private key of smtpd_tls_cert_file.")
CFG(smtpd_tls_min_version, STR, "TLSv1.2",
    "Oldest TLS version accepted: TLSv1.2 or TLSv1.3.")
CFG(smtpd_tls_ciphers, STR, "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:!aNULL:!MD5:!DSS",
    "OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's defaults).")
CFG(smtpd_tls_auth_only, BOOL, "yes",
    "Offer and accept AUTH only inside TLS. AUTH before STARTTLS gets 538 5.7.11.")
CFG(smtpd_sasl_password_file, STR, "",
    "The AUTH password file: \"user:hash\" lines with crypt(3) hashes (yescrypt, bcrypt, "
    "sha512-crypt); write them with `ternctl passwd`. Empty: AUTH is not offered.")
CFG(smtpd_sender_login_maps, STR, "",
    "File of \"address login[, login]\" lines (address may be @domain): which envelope senders "
    "each authenticated user may use. Empty: a user may send as login@ one of $mydestination "
    "or $myorigin, or as the login itself when it is an address.")
CFG(smtpd_auth_failure_limit, INT, "3",
    "AUTH failures in one session after which the session is ended (421 4.7.0). Each failure "
    "is answered after a delay that grows with the count.")
CFG(smtpd_auth_client_limit, INT, "10",
    "AUTH failures allowed from one client IP address per smtpd_auth_client_window; beyond it "
    "AUTH gets 454 4.7.0 until the window passes. 0: no limit.")
CFG(smtpd_auth_client_window, TIME, "10m",
    "The window of smtpd_auth_client_limit.")
CFG(submission_hide_client, BOOL, "no",
    "In Received: headers of authenticated submissions, omit the client's name and address.")
CFG(queue_directory, STR, "/var/spool/tern",
    "The queue: tmp/ for messages being received, msg/ for committed messages.")
CFG(queue_retry_interval, TIME, "300s",
    "First retry delay after a temporary delivery failure; doubled on each failure.")
CFG(maximal_backoff_time, TIME, "4000s",
    "Longest delay between two delivery attempts of one message.")
CFG(maximal_queue_lifetime, TIME, "5d",
    "After this long in the queue a temporarily failing recipient is failed permanently.")
CFG(relayhost, STR, "",
    "Send all mail for non-local domains through this smarthost: host (MX lookup), [host] (no MX "
    "lookup), either with an optional :port. Empty: deliver directly to each domain's MX hosts. "
    "transport_maps entries take precedence.")
CFG(transport_maps, STR, "",
    "File of \"destination transport[:nexthop]\" lines routing mail by recipient domain: "
    "destination is a domain, .domain (its subdomains) or * (anything else); transport is "
    "smtp (nexthop: host, [host], optional :port; empty: the domain's MX), lmtp (nexthop: "
    "unix:/path, host:port or [host]:port), local, or error (nexthop: the reason, e.g. "
    "\"error:5.7.1 no mail here\"). Re-read on SIGHUP.")
CFG(local_transport, STR, "local",
    "How recipients in $mydestination are delivered: local (aliases, mailboxes, commands, by "
    "the local delivery workers) or lmtp:unix:/path, lmtp:host:port (an LMTP server such as "
    "Dovecot; no alias expansion, as with Postfix's local_transport).")
CFG(smtp_port, INT, "25",
    "TCP port of outbound SMTP when a next hop gives none (MX hosts, relayhost without :port).")
CFG(smtp_helo_name, STR, "$myhostname",
    "The name sent in EHLO/HELO/LHLO by the outbound SMTP and LMTP client.")
CFG(smtp_tls_security_level, STR, "may",
    "Outbound TLS: none, may (STARTTLS when offered, no certificate check), encrypt (TLS "
    "required), verify (TLS required, certificate checked against smtp_tls_CAfile and the "
    "host name). Per destination: smtp_tls_policy_maps.")
CFG(smtp_tls_policy_maps, STR, "",
    "File of \"destination level\" lines overriding smtp_tls_security_level: destination is a "
    "domain, .domain, or a next hop as written in relayhost/transport_maps ([host]:port); level "
    "is none, may, encrypt, verify, or wrapper (implicit TLS from the first byte, RFC 8314 port "
    "465, certificate not checked) or wrapper-verify.")
CFG(smtp_tls_CAfile, STR, "",
    "PEM file of trusted CA certificates for the verify levels. Empty: the system's store.")
CFG(smtp_sasl_password_maps, STR, "",
    "File of \"nexthop user:password\" lines: credentials for AUTH PLAIN/LOGIN at a smarthost. "
    "nexthop is written as in relayhost or transport_maps ([host]:port, host, or a domain). "
    "Credentials are sent only over TLS. Keep the file readable by root only.")
CFG(smtp_destination_concurrency_limit, INT, "20",
    "Most simultaneous outbound connections to one destination (domain or next hop).")
CFG(smtp_destination_recipient_limit, INT, "50",
    "Most recipients in one outbound SMTP/LMTP transaction; more are sent in further "
    "transactions.")
CFG(smtp_connection_limit, INT, "100",
    "Most simultaneous outbound SMTP and LMTP connections in total.")
CFG(smtp_connection_reuse_count_limit, INT, "100",
    "Most messages sent over one outbound connection before it is closed; 1: no reuse.")
CFG(smtp_mx_address_limit, INT, "5",
    "Most server addresses (over all MX hosts) tried in one delivery attempt.")
CFG(delay_warning_time, TIME, "0",
    "Tell the sender once (a \"delayed\" DSN) when a message has waited this long for "
    "recipients that still fail temporarily. 0: never.")
CFG(local_delivery_workers, INT, "2",
    "Number of local delivery processes (each delivers one message at a time).")
CFG(alias_maps, LIST, "/etc/aliases",
    "Alias files in /etc/aliases format, searched in order. Empty: no aliases.")
CFG(recipient_delimiter, STR, "+",
    "Characters that separate a user name from an address extension (user+tag). Empty: none.")
CFG(mailbox_format, STR, "mbox",
    "Local mailbox format: mbox or maildir.")
CFG(mailbox_base, STR, "",
    "If set, every local user's mailbox lives under this directory (mbox: DIR/USER, maildir: "
    "DIR/USER/) and any local part is a valid user: a development setup with no Unix users. "
    "Empty: the real layout with getpwnam() users.")
CFG(mail_spool_directory, STR, "/var/mail",
    "Directory of mbox mailboxes (mailbox_format = mbox and empty mailbox_base).")
CFG(home_mailbox, STR, "Maildir/",
    "Mailbox path relative to the user's home directory for mailbox_format = maildir.")
CFG(default_privs, STR, "nobody",
    "The user that runs alias commands and file deliveries when tern runs as root and the "
    "alias file is owned by root.")
CFG(log_file, STR, "",
    "Log file. Empty: standard error.")
CFG(pid_file, STR, "",
    "If set, ternd writes its process id here.")
