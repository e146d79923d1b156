/** An error answer of PAI: `{code, message}` and the HTTP status. */
export class PaiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string
  ) {
    super(message);
  }
}
