#!/bin/sh
# gen.sh writes the TLS material of sink's "as an admin makes it" tests with
# openssl and keytool, the tools a TheHive admin uses. Run from this
# directory: sh gen.sh. Certificates are valid for 100 years, so the
# committed files do not expire. Every store password: changeit.
#
#   root.pem                 root CA (RSA 3072): the only certificate a trust store holds
#   root.jks                 the root as a trusted certificate entry, by keytool
#   intermediate.pem         intermediate CA (RSA 2048) signed by the root
#   server-chain.pem         server leaf (RSA, 127.0.0.1 ::1 localhost) + intermediate
#   server-leaf.pem          the leaf alone (no intermediate), for the negative case
#   server-key-pkcs1.pem     its key, PKCS#1 ("RSA PRIVATE KEY")
#   client-rsa-pkcs1.pem     client leaf (RSA) + intermediate + key in PKCS#1
#   client-rsa-pkcs8.pem     the same chain + the same key in PKCS#8 ("PRIVATE KEY")
#   client-ec-sec1.pem       client leaf (ECDSA P-384) + intermediate + key in SEC1 ("EC PRIVATE KEY")
#   client-rsa.p12           the RSA client key + chain, PKCS12 by openssl (friendly name "client")
#   client-rsa.jks           the same, imported by keytool from client-rsa.p12 (private key entry "client")
set -eu
days=36500
pass=changeit
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -f root.jks client-rsa.jks client-rsa.p12

# Root CA, self-signed.
openssl req -x509 -newkey rsa:3072 -nodes -keyout "$tmp/root.key" -out root.pem -days $days \
  -subj "/O=auditrelay tests/CN=auditrelay admin root CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

# Intermediate CA, signed by the root.
openssl req -new -newkey rsa:2048 -nodes -keyout "$tmp/int.key" -out "$tmp/int.csr" \
  -subj "/O=auditrelay tests/CN=auditrelay admin intermediate CA"
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' > "$tmp/int.ext"
openssl x509 -req -in "$tmp/int.csr" -CA root.pem -CAkey "$tmp/root.key" -CAcreateserial \
  -out intermediate.pem -days $days -extfile "$tmp/int.ext"

# Server leaf (RSA), signed by the intermediate; key written in PKCS#1.
openssl req -new -newkey rsa:2048 -nodes -keyout "$tmp/server.key" -out "$tmp/server.csr" \
  -subj "/O=auditrelay tests/CN=auditrelay admin server"
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n' > "$tmp/server.ext"
openssl x509 -req -in "$tmp/server.csr" -CA intermediate.pem -CAkey "$tmp/int.key" -CAcreateserial \
  -out server-leaf.pem -days $days -extfile "$tmp/server.ext"
cat server-leaf.pem intermediate.pem > server-chain.pem
openssl rsa -in "$tmp/server.key" -traditional -out server-key-pkcs1.pem

# Client leaves, signed by the intermediate: one RSA, one ECDSA P-384.
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' > "$tmp/client.ext"
openssl req -new -newkey rsa:2048 -nodes -keyout "$tmp/client-rsa.key" -out "$tmp/client-rsa.csr" \
  -subj "/O=auditrelay tests/CN=auditrelay admin RSA client"
openssl x509 -req -in "$tmp/client-rsa.csr" -CA intermediate.pem -CAkey "$tmp/int.key" -CAcreateserial \
  -out "$tmp/client-rsa.crt" -days $days -extfile "$tmp/client.ext"
openssl rsa -in "$tmp/client-rsa.key" -traditional -out "$tmp/client-rsa-pkcs1.key"
openssl pkcs8 -topk8 -nocrypt -in "$tmp/client-rsa.key" -out "$tmp/client-rsa-pkcs8.key"
cat "$tmp/client-rsa.crt" intermediate.pem "$tmp/client-rsa-pkcs1.key" > client-rsa-pkcs1.pem
cat "$tmp/client-rsa.crt" intermediate.pem "$tmp/client-rsa-pkcs8.key" > client-rsa-pkcs8.pem

openssl ecparam -name secp384r1 -genkey -noout -out "$tmp/client-ec.key"
openssl req -new -key "$tmp/client-ec.key" -out "$tmp/client-ec.csr" \
  -subj "/O=auditrelay tests/CN=auditrelay admin EC client"
openssl x509 -req -in "$tmp/client-ec.csr" -CA intermediate.pem -CAkey "$tmp/int.key" -CAcreateserial \
  -out "$tmp/client-ec.crt" -days $days -extfile "$tmp/client.ext"
cat "$tmp/client-ec.crt" intermediate.pem "$tmp/client-ec.key" > client-ec-sec1.pem

# JKS stores, by keytool: the root alone, and the RSA client key + chain
# (through a PKCS12 that openssl writes, as admins usually do).
keytool -importcert -noprompt -keystore root.jks -storetype JKS -storepass $pass -alias root -file root.pem
openssl pkcs12 -export -in "$tmp/client-rsa.crt" -certfile intermediate.pem -inkey "$tmp/client-rsa.key" \
  -name client -passout pass:$pass -out client-rsa.p12
keytool -importkeystore -noprompt -srckeystore client-rsa.p12 -srcstoretype PKCS12 -srcstorepass $pass \
  -destkeystore client-rsa.jks -deststoretype JKS -deststorepass $pass -destkeypass $pass
rm -f root.srl intermediate.srl
