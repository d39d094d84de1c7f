// A legacy Java client's token request: mutual TLS with a PKCS#12 keystore, plus client_id.
//   openssl pkcs12 -export -in dev-pki/client.pem -inkey dev-pki/client-key.pem -out client.p12 -passout pass:changeit
//   keytool -importcert -noprompt -alias ca -file dev-pki/ca.pem -keystore ca.p12 -storetype PKCS12 -storepass changeit
//   java TokenRequest.java https://localhost:8443/token client.p12 changeit ca.p12
import java.io.FileInputStream;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public class TokenRequest {
    public static void main(String[] args) throws Exception {
        String url = args[0];
        char[] password = args[2].toCharArray();
        KeyStore identity = KeyStore.getInstance("PKCS12");
        try (FileInputStream in = new FileInputStream(args[1])) { identity.load(in, password); }
        KeyStore trust = KeyStore.getInstance("PKCS12");
        try (FileInputStream in = new FileInputStream(args[3])) { trust.load(in, password); }

        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(identity, password);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext tls = SSLContext.getInstance("TLS");
        tls.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);

        String form = "grant_type=client_credentials"
            + "&client_id=" + URLEncoder.encode("11111111-2222-3333-4444-555555555555", StandardCharsets.UTF_8)
            + "&scope=" + URLEncoder.encode("api://demo/.default", StandardCharsets.UTF_8);
        HttpClient client = HttpClient.newBuilder().sslContext(tls).build();
        HttpRequest request = HttpRequest.newBuilder(URI.create(url))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .POST(HttpRequest.BodyPublishers.ofString(form))
            .build();
        HttpResponse<String> response = client.send(request, HttpResponse.BodyHandlers.ofString());
        if (response.statusCode() != 200) {
            System.err.println(response.statusCode() + " " + response.body());
            System.exit(1);
        }
        // Use the token; never print it.
        System.out.println("got a token (" + response.body().length() + " bytes of JSON)");
    }
}
