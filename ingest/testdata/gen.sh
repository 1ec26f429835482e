#!/bin/sh
# gen.sh writes the TLS material of the ingest tests with openssl and
# keytool, the tools a TheHive admin has at hand. Run from ingest/testdata:
#   sh gen.sh
# Every store's password is changeit; certificates are valid for 100 years.
set -eu
days=36500
sub() { openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null; }

# The CA of auditrelay's listener and of TheHive's client certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
  -days $days -subj "/CN=ingest test CA" 2>/dev/null
# An unrelated CA, whose client certificate must be refused.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other-ca.key -out other-ca.pem \
  -days $days -subj "/CN=unrelated CA" 2>/dev/null

# auditrelay's server certificate: a PKCS12 key store (auditrelay.ingest.tls.keyManager).
sub server "auditrelay ingest"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days $days -extfile server.ext -out server.pem 2>/dev/null
openssl pkcs12 -export -in server.pem -certfile ca.pem -inkey server.key -name ingest -passout pass:changeit -out server.p12

# The trust store of client certificates: JKS made by keytool (auditrelay.ingest.tls.trustManager).
rm -f truststore.jks
keytool -importcert -noprompt -keystore truststore.jks -storetype JKS -storepass changeit -alias ca -file ca.pem >/dev/null 2>&1

# TheHive 3's client certificate (ws.ssl.keyManager): a PKCS12 key store, and its PEM for Go's client.
sub client "thehive"
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days $days -extfile client.ext -out client.pem 2>/dev/null
openssl pkcs12 -export -in client.pem -inkey client.key -name thehive -passout pass:changeit -out client.p12

# A client certificate of the unrelated CA.
sub other-client "intruder"
openssl x509 -req -in other-client.csr -CA other-ca.pem -CAkey other-ca.key -CAcreateserial -days $days -extfile client.ext -out other-client.pem 2>/dev/null

rm -f ./*.csr ./*.ext ./*.srl ca.key other-ca.key server.key other-client.key.unused
