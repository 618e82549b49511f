// Encryption of OAuth tokens at rest: AES-256-GCM, a fresh 96-bit nonce per ciphertext, and
// associated data binding a ciphertext to its integration (and purpose), so a ciphertext copied
// to another row does not decrypt. Layout: version(1) | key id(8) | nonce(12) | tag(16) | data.
// The key id (first 8 bytes of SHA-256 of the key) lets TOKEN_ENCRYPTION_OLD_KEYS decrypt rows
// written before a rotation; new writes always use the current key.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

const VERSION = 1;

export type Keyring = { currentKeyId: string; encrypt(plain: string, aad: string): Buffer; decrypt(box: Buffer, aad: string): string };

function keyId(key: Buffer): Buffer {
  return createHash('sha256').update(key).digest().subarray(0, 8);
}

export function createKeyring(currentKeyBase64: string, oldKeysBase64: string[] = []): Keyring {
  const keys = new Map<string, Buffer>();
  const current = Buffer.from(currentKeyBase64, 'base64');
  if (current.length !== 32) throw new Error('token encryption key must be 32 bytes');
  const currentId = keyId(current);
  for (const k of [currentKeyBase64, ...oldKeysBase64]) {
    const key = Buffer.from(k.trim(), 'base64');
    if (key.length === 32) keys.set(keyId(key).toString('hex'), key);
  }
  return {
    currentKeyId: currentId.toString('hex'),
    encrypt(plain, aad) {
      const nonce = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', current, nonce);
      cipher.setAAD(Buffer.from(aad));
      const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return Buffer.concat([Buffer.from([VERSION]), currentId, nonce, cipher.getAuthTag(), data]);
    },
    decrypt(box, aad) {
      if (box.length < 37 || box[0] !== VERSION) throw new Error('unknown token ciphertext format');
      const id = box.subarray(1, 9).toString('hex');
      const key = keys.get(id);
      if (!key) throw new Error(`no key for token ciphertext (key id ${id}); add it to TOKEN_ENCRYPTION_OLD_KEYS`);
      const decipher = createDecipheriv('aes-256-gcm', key, box.subarray(9, 21));
      decipher.setAuthTag(box.subarray(21, 37));
      decipher.setAAD(Buffer.from(aad));
      return Buffer.concat([decipher.update(box.subarray(37)), decipher.final()]).toString('utf8');
    },
  };
}
