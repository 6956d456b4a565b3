// TEMPORARY placeholder until the native-split branch (helper) lands its GlooGroup over Debian's Gloo; replaced at merge.
namespace Vit.Torch.Distributed;

internal enum GlooElement { Float32, Float64, Int32, Int64 }

internal sealed class GlooGroup : IDisposable
{
    public int Rank { get; private init; }
    public int WorldSize { get; private init; }
    public static GlooGroup Create(DistributedOptions options) => throw new NotImplementedException("placeholder");
    public void AllReduce(IntPtr data, long count, GlooElement type, ReduceOp op, TimeSpan? timeout) => throw new NotImplementedException();
    public void Broadcast(IntPtr data, long bytes, int root, TimeSpan? timeout) => throw new NotImplementedException();
    public void Barrier(TimeSpan? timeout) => throw new NotImplementedException();
    public void Dispose() { }
}
