// A legacy .NET client's token request: HttpClientHandler.ClientCertificates, plus client_id.
//   openssl pkcs12 -export -in dev-pki/client.pem -inkey dev-pki/client-key.pem -out client.pfx -passout pass:changeit
//   dotnet run   (in a console project containing this file)
using System.Net.Http;
using System.Security.Cryptography.X509Certificates;

var handler = new HttpClientHandler();
handler.ClientCertificateOptions = ClientCertificateOption.Manual;
handler.ClientCertificates.Add(new X509Certificate2("client.pfx", "changeit"));
// Trust the gateway's CA (dev-pki/ca.pem) in the machine store in production; for the dev PKI:
var ca = X509Certificate2.CreateFromPemFile("dev-pki/ca.pem");
handler.ServerCertificateCustomValidationCallback = (_, cert, chain, errors) =>
{
    if (cert is null || chain is null) return false;
    chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
    chain.ChainPolicy.CustomTrustStore.Add(ca);
    return chain.Build(cert);
};

using var client = new HttpClient(handler);
var form = new FormUrlEncodedContent(new Dictionary<string, string>
{
    ["grant_type"] = "client_credentials",
    ["client_id"] = "11111111-2222-3333-4444-555555555555",
    ["scope"] = "api://demo/.default",
});
var response = await client.PostAsync("https://localhost:8443/token", form);
var body = await response.Content.ReadAsStringAsync();
if (!response.IsSuccessStatusCode)
{
    Console.Error.WriteLine($"{(int)response.StatusCode} {body}");
    return 1;
}
Console.WriteLine("got a token"); // use it; never log it
return 0;
