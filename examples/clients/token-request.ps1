# A legacy Windows client's token request with PowerShell 7: a client certificate, plus client_id.
#   openssl pkcs12 -export -in dev-pki/client.pem -inkey dev-pki/client-key.pem -out client.pfx -passout pass:changeit
#   pwsh ./token-request.ps1
param(
    [string]$GatewayUrl = "https://localhost:8443",
    [string]$Pfx = "client.pfx",
    [string]$Password = "changeit",
    [string]$ClientId = "11111111-2222-3333-4444-555555555555",
    [string]$Scope = "api://demo/.default"
)
$cert = [System.Security.Cryptography.X509Certificates.X509Certificate2]::new((Resolve-Path $Pfx), $Password)
$form = @{ grant_type = "client_credentials"; client_id = $ClientId; scope = $Scope }
# The gateway's CA must be trusted by the machine (or add -SkipCertificateCheck for the dev PKI only).
$token = Invoke-RestMethod -Method Post -Uri "$GatewayUrl/token" -Certificate $cert `
    -ContentType "application/x-www-form-urlencoded" -Body $form
"got a $($token.token_type) token, expires in $($token.expires_in) s"
