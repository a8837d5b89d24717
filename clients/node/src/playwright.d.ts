import type { Fixtures, PlaywrightTestArgs, PlaywrightTestOptions, PlaywrightWorkerArgs, PlaywrightWorkerOptions, TestType } from '@playwright/test';
import type { Authenticator, AuthenticatorOptions, Client, Server, StartOptions, VendorOptions } from './index.js';

export interface SecurityKeyTestOptions {
  /** Add Virtual Authenticator options of each test's key ({vendor} for ferrokey's own). */
  ferrokeyKeyOptions: AuthenticatorOptions & { vendor?: VendorOptions };
}
export interface SecurityKeyWorkerOptions {
  /** start()'s options, or {url} (and {token}) to use a running server. */
  ferrokeyServerOptions: StartOptions & { url?: string; token?: string; attach?: boolean };
}
export interface SecurityKeyTestFixtures {
  /** A fresh key for this test, removed after it; `securityKey.chrome` answers Chrome's sheets. */
  securityKey: Authenticator & { chrome: import('./index.js').Chrome };
}
export interface SecurityKeyWorkerFixtures {
  ferrokeyServer: Server | { url: string; client: Client; transport: string };
  ferrokeyUiDevtoolsPort: number;
}

export const securityKeyFixtures: Fixtures<
  SecurityKeyTestFixtures & SecurityKeyTestOptions,
  SecurityKeyWorkerFixtures & SecurityKeyWorkerOptions,
  PlaywrightTestArgs & PlaywrightTestOptions,
  PlaywrightWorkerArgs & PlaywrightWorkerOptions
>;
export const test: TestType<
  PlaywrightTestArgs & PlaywrightTestOptions & SecurityKeyTestFixtures & SecurityKeyTestOptions,
  PlaywrightWorkerArgs & PlaywrightWorkerOptions & SecurityKeyWorkerFixtures & SecurityKeyWorkerOptions
>;
export { expect } from '@playwright/test';
