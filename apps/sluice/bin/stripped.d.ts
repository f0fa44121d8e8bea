/** Types of stripped.js (plain JavaScript: it runs before anything can load TypeScript). */
export declare const STRIPPED_DIR: string;
/** Strip every main-thread source into `outDir`; resolves the number of files. */
export declare function buildStripped(outDir?: string): Promise<number>;
/** Serve the stripped sources to this thread's loader; false when there is no build for this Node. */
export declare function useStripped(dir?: string): Promise<boolean>;
