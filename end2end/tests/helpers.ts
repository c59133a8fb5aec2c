import { expect, Page } from '@playwright/test';

// What every spec does the same way: full-page screenshots into end2end/screenshots/, waiting for the islands to
// hydrate, and signing in with a local account.

export const shot = (page: Page, name: string) => page.screenshot({ path: `screenshots/${name}.png`, fullPage: true });

export async function hydrated(page: Page) {
  await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
}

export async function signIn(page: Page, email: string, password: string) {
  await page.goto('/login');
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.click('button:has-text("Sign in")');
  await expect(page.getByTestId('user-email')).toHaveText(email);
}
