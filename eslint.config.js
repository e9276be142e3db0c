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

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'node_modules/**', 'bin/**', 'scripts/**', 'eslint.config.js'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
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
