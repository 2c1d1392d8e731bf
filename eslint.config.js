// @ts-check
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/** Everything outside core/ sees core only through its explicit export list. */
const coreOnlyThroughIndex = {
  regex: String.raw`(^|/)core/(?!index\.ts$)`,
  message: 'Import core through core/index.ts, its explicit export list.',
};

/** @param {string} other the sibling server folder that must not be imported */
const noSiblingServer = (other) => ({
  regex: String.raw`(^|/)(servers/)?${other}/`,
  message: 'Servers never import each other; share code through core/.',
});

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      '.cache/',
      '.services/',
      'lab-report/',
      'bench-results/',
      'test-results/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['*.js', 'bin/*.mjs'] } },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-empty': ['error', { allowEmptyCatch: false }],
      eqeqeq: ['error', 'always'],
    },
  },
  {
    files: ['**/*.ts'],
    ignores: ['core/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: [coreOnlyThroughIndex] }] },
  },
  {
    // A worker thread loads only the core modules it runs: all of core/index.ts took ~0.5 s.
    files: ['replay/encode-worker.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    // core/ is the library: no environment, no signals, no exits, and nothing from outside it.
    files: ['core/**/*.ts'],
    ignores: ['core/**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { regex: String.raw`^\.\./`, message: 'core/ imports nothing outside core/.' },
          ],
        },
      ],
      'no-restricted-properties': [
        'error',
        {
          object: 'process',
          property: 'env',
          message: 'core/ takes configuration as arguments; read env in a main.ts.',
        },
        { object: 'process', property: 'exit', message: 'Only a main.ts exits.' },
        { object: 'process', property: 'on', message: 'Only a main.ts installs signal handlers.' },
      ],
    },
  },
  {
    files: ['servers/mdp/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [coreOnlyThroughIndex, noSiblingServer('lba')] },
      ],
    },
  },
  {
    files: ['servers/lba/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [coreOnlyThroughIndex, noSiblingServer('mdp')] },
      ],
    },
  },
  {
    files: ['**/*.js', 'bin/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: globals.node,
    },
  },
  {
    // The trader page runs in browsers.
    files: ['servers/mdp/public/**/*.js'],
    languageOptions: { globals: globals.browser },
  },
);
