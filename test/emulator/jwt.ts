// RS256 id_token signing and the certificate routes, so that OAuth2Client.verifyIdToken works
// when `endpoints.oauth2FederatedSignonPemCertsUrl` points at the emulator (google-api.md §1.5).

import { createHash, createSign, generateKeyPairSync, type KeyObject } from 'node:crypto';

export class SigningKey {
  private readonly privateKey: KeyObject;
  private readonly publicKey: KeyObject;
  readonly kid: string;

  constructor() {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.privateKey = privateKey;
    this.publicKey = publicKey;
    const der = publicKey.export({ type: 'spki', format: 'der' });
    this.kid = createHash('sha256').update(der).digest('hex').slice(0, 40);
  }

  sign(payload: Record<string, unknown>): string {
    const header = { alg: 'RS256', kid: this.kid, typ: 'JWT' };
    const enc = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
    const signingInput = `${enc(header)}.${enc(payload)}`;
    const signature = createSign('RSA-SHA256').update(signingInput).sign(this.privateKey).toString('base64url');
    return `${signingInput}.${signature}`;
  }

  /** `/oauth2/v1/certs`: `{kid: PEM}`; GAL verifies the RS256 signature against it. */
  pemCerts(): Record<string, string> {
    return { [this.kid]: this.publicKey.export({ type: 'spki', format: 'pem' }).toString() };
  }

  /** `/oauth2/v3/certs`: a JWKS. */
  jwks(): { keys: Record<string, unknown>[] } {
    const jwk = this.publicKey.export({ format: 'jwk' });
    return { keys: [{ ...jwk, kid: this.kid, alg: 'RS256', use: 'sig' }] };
  }
}

/** at_hash: left half of SHA-256 of the access token, base64url (OIDC core §3.1.3.6). */
export function atHash(accessToken: string): string {
  const digest = createHash('sha256').update(accessToken).digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}
