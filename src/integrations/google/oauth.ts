// Google's own OAuth client, pointed at the configured endpoints (Google or the emulator).
import { OAuth2Client } from 'google-auth-library';

export type GoogleConfig = {
  GOOGLE_CLIENT_ID: string;
  GOOGLE_CLIENT_SECRET: string;
  GOOGLE_AUTH_URL: string;
  GOOGLE_TOKEN_URL: string;
  GOOGLE_REVOKE_URL: string;
  GOOGLE_API_URL: string;
};

export function createOAuthClient(google: GoogleConfig, redirectUri?: string): OAuth2Client {
  return new OAuth2Client({
    clientId: google.GOOGLE_CLIENT_ID,
    clientSecret: google.GOOGLE_CLIENT_SECRET,
    redirectUri,
    endpoints: {
      oauth2AuthBaseUrl: google.GOOGLE_AUTH_URL,
      oauth2TokenUrl: google.GOOGLE_TOKEN_URL,
      oauth2RevokeUrl: google.GOOGLE_REVOKE_URL,
    },
  });
}

/** The claims of an id_token received straight from the token endpoint over TLS: OIDC allows
 * using them without a signature check in that case (google-api.md §1.5). */
export function idTokenClaims(idToken: string): { sub: string; email?: string; email_verified?: boolean } {
  const payload = idToken.split('.')[1];
  if (!payload) throw new Error('malformed id_token');
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
  if (typeof claims.sub !== 'string') throw new Error('id_token has no sub');
  return {
    sub: claims.sub,
    email: typeof claims.email === 'string' ? claims.email : undefined,
    email_verified: typeof claims.email_verified === 'boolean' ? claims.email_verified : undefined,
  };
}
