// Lint: typescript-eslint's recommended rules plus the layer rules of design.md — layers point
// one way (cli/api -> machine -> devices, boot -> vmm -> addon), and only src/vmm/native.ts loads
// the addon. src/machine composes a VM (builder, vCPU workers, lifecycle) from the layers below.
import tseslint from 'typescript-eslint';

const addonOnlyInVmm = {
  group: ['**/vmm/native.js', '**/build/Release/*', '*.node'],
  message: 'only src/vmm may touch the addon; use the src/vmm wrappers (GuestMemory, EventFd, Vm, Vcpu)',
};
const upward = (layers) => ({
  group: layers.map((l) => `**/${l}/**`),
  message: `layers point one way (cli/api -> machine -> devices, boot -> vmm -> addon); this import points back up`,
});

const honestTests = [
  { selector: "CallExpression[callee.property.name='only']", message: '.only() in committed tests drops every other test from the run' },
  {
    selector: "CallExpression[callee.property.name='skip'][callee.object.name=/^(test|suite|[a-z]+Test|t)$/]",
    message: 'skip a test that cannot run here with skipTest()/testUnless() from test/helpers/skip.ts, which names it and its reason',
  },
];

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'node_modules/**', 'bin/**', 'eslint.config.js'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // Committed tests run in full: no test.only / suite.only (they silently drop the other tests),
    // and a test that cannot run here is skipped with its reason through test/helpers/skip.ts.
    files: ['test/**/*.ts'],
    ignores: ['test/helpers/skip.ts'],
    rules: { 'no-restricted-syntax': ['error', ...honestTests] },
  },
  {
    // uvu runs what was registered before .run(): a test registered after it never runs, silently.
    files: ['test/**/*.test.ts'],
    rules: { 'no-restricted-syntax': ['error', ...honestTests, { selector: "Program > ExpressionStatement[expression.callee.property.name='run'] ~ *", message: 'nothing after .run(): uvu never runs a test registered after it' }] },
  },
  {
    files: ['scripts/**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly' } },
  },
  {
    files: ['src/vmm/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [upward(['devices', 'boot', 'api', 'cli', 'bench', 'check', 'machine'])] }] },
  },
  {
    files: ['src/devices/**/*.ts', 'src/boot/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [addonOnlyInVmm, upward(['api', 'cli', 'bench', 'machine'])] }] },
  },
  {
    files: ['src/api/**/*.ts', 'src/cli/**/*.ts', 'src/bench/**/*.ts', 'src/check/**/*.ts', 'src/machine/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [addonOnlyInVmm] }] },
  },
);
